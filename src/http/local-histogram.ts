/**
 * A Prometheus histogram kept as plain bucket counts, for the request-duration metric that
 * every request observes. prom-client's Histogram hashes a child's labels into a string key
 * and looks it up on every observe (3-4% of the server CPU of a kept OCSP answer); here the
 * caller keeps each series it was given, and an observe is a bucket search and three
 * additions. A prom-client Registry takes any object with a metric's name, help, type,
 * aggregator and get(): get() gives what Histogram's does (the same values, labels and
 * `_bucket`/`_sum`/`_count` names), so the exposition text and the cluster's aggregation
 * (AggregatorRegistry.aggregate over each worker's getMetricsAsJSON) read the same.
 */
import type { Aggregator, Metric, Registry } from 'prom-client';

/** One line of the exposition, as prom-client's metrics give them. */
export interface HistogramValue {
  readonly value: number;
  readonly metricName: string;
  readonly labels: Readonly<Record<string, string | number>>;
}

/** A metric's values as prom-client's get() gives them (its typings name the type by a number). */
export interface HistogramValues {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram';
  readonly aggregator: Aggregator;
  readonly values: HistogramValue[];
}

/** One label set's observations. */
export class HistogramSeries {
  /** Observations per bucket, not cumulative; those above every bound only count. */
  readonly buckets: number[];
  sum = 0;
  count = 0;

  constructor(
    private readonly bounds: readonly number[],
    readonly labels: Readonly<Record<string, string>>,
  ) {
    this.buckets = bounds.map(() => 0);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
    if (bucket < bounds.length) this.buckets[bucket]!++;
    this.sum += value;
    this.count++;
  }
}

/** What a LocalHistogram is made with; as prom-client's Histogram takes it. */
export interface LocalHistogramOptions {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Upper bounds, ascending. */
  readonly buckets: readonly number[];
  readonly registers: readonly Registry[];
}

/** A histogram metric whose series are found once and then observed directly. */
export class LocalHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator: Aggregator = 'sum';
  private readonly labelNames: readonly string[];
  private readonly bounds: readonly number[];
  /** In the order they were made, which is the order they are exposed in. */
  private readonly series: HistogramSeries[] = [];
  private readonly byLabels = new Map<string, HistogramSeries>();

  constructor(options: LocalHistogramOptions) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames;
    this.bounds = [...options.buckets];
    // The Registry reads only the members above and get(); its type names prom-client's own classes.
    for (const registry of options.registers) registry.registerMetric(this as unknown as Metric);
  }

  /**
   * The series of these label values (in labelNames' order), made on first ask. Ask only
   * to observe: prom-client shows a label set once it is observed, and so does this.
   */
  labels(...values: string[]): HistogramSeries {
    const key = values.join('\0');
    let series = this.byLabels.get(key);
    if (series === undefined) {
      const labels = Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]!]));
      series = new HistogramSeries(this.bounds, labels);
      this.byLabels.set(key, series);
      this.series.push(series);
    }
    return series;
  }

  /** Histogram.get()'s shape: per series, cumulative buckets (`le` first), then +Inf, sum and count. */
  async get(): Promise<HistogramValues> {
    const bucketName = `${this.name}_bucket`;
    const values: HistogramValue[] = [];
    for (const series of this.series) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += series.buckets[i]!;
        values.push({ value: cumulative, metricName: bucketName, labels: { le: this.bounds[i]!, ...series.labels } });
      }
      values.push(
        { value: series.count, metricName: bucketName, labels: { le: '+Inf', ...series.labels } },
        { value: series.sum, metricName: `${this.name}_sum`, labels: { ...series.labels } },
        { value: series.count, metricName: `${this.name}_count`, labels: { ...series.labels } },
      );
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
