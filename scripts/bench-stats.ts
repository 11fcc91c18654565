/** Repeated measurements as the benchmark reports them: a median and the range of the runs. */

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** Median (of an even count, the mean of the middle two), minimum and maximum; undefined for none. */
export function spread(values: readonly (number | null | undefined)[]): Spread | undefined {
  const sorted = values.filter((value): value is number => typeof value === 'number' && Number.isFinite(value)).sort((a, b) => a - b);
  if (!sorted.length) return undefined;
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted.at(-1)! };
}

const show = (value: number, digits: number) => String(Math.round(value * 10 ** digits) / 10 ** digits);

/** "2548 [2395-2701]" for several runs, "2548" for one, "-" for none. */
export function cell(values: readonly (number | null | undefined)[], digits = 0): string {
  const s = spread(values);
  if (!s) return '-';
  return s.min === s.max ? show(s.median, digits) : `${show(s.median, digits)} [${show(s.min, digits)}-${show(s.max, digits)}]`;
}

/** Ratios of paired runs (ours[i] / theirs[i]), as a cell. */
export const ratioCell = (ours: readonly number[], theirs: readonly number[]): string =>
  theirs.length ? cell(ours.map((value, i) => (theirs[i] ? value / theirs[i]! : null)), 2) : '-';
