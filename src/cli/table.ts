/** Plain-text tables for CLI listings. */

/** Renders rows as left-aligned columns under a header. */
export function table(headers: readonly string[], rows: readonly (readonly (string | null | undefined)[])[]): string {
  const cells = [headers, ...rows.map((row) => row.map((cell) => cell ?? '-'))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells.map((row) => row.map((cell, i) => (cell ?? '').padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
