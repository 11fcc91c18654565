/**
 * A database URL as safe to print in a log, a banner or `config show`: user, host, port and
 * database only. The password goes, and so does every query parameter (`password=`,
 * `sslpassword=`, `sslkey=` ... all name secrets or where they are); a URL that does not
 * parse is not shown at all.
 */
export function withoutPassword(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '(a database URL that does not parse)';
  }
  const user = parsed.username ? `${parsed.username}${parsed.password ? ':********' : ''}@` : '';
  return `${parsed.protocol}//${user}${parsed.host}${parsed.pathname}`;
}
