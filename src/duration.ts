/** Durations on the command line: 90s, 15m, 12h, 30d, or plain seconds. */

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** Parses a duration to whole seconds; throws a one-line error for anything else. */
export function parseDuration(text: string): number {
  const match = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (!match) throw new Error(`invalid duration "${text}" (use e.g. 3600, 90m, 12h, 30d)`);
  return Number(match[1]) * UNIT_SECONDS[match[2] || 's']!;
}
