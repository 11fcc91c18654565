/** A database URL as safe to print in a log, a banner or `config show`: its password masked. */
export function withoutPassword(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/]*:)[^@/]*@/i, '$1********@');
}
