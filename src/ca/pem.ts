/** PEM armour for certificates (RFC 7468). */

/** Wraps DER as a PEM block with 64-character lines (sliced: a /.{1,64}/g match cost twice as much). */
export function toPem(der: Buffer, label = 'CERTIFICATE'): string {
  const base64 = der.toString('base64');
  let lines = '';
  for (let at = 0; at < base64.length; at += 64) lines += `${base64.slice(at, at + 64)}\n`;
  return `-----BEGIN ${label}-----\n${lines || '\n'}-----END ${label}-----\n`;
}

/** Every CERTIFICATE block in a PEM bundle, as DER, in order. */
export function certificatesFromPem(pem: string): Buffer[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => Buffer.from(block.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64'));
}
