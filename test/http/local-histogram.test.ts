/**
 * The request-duration histogram kept as plain counts (src/http/local-histogram.ts) reads
 * exactly as prom-client's own Histogram given the same observations: the exposition text
 * of one process, and a cluster's sum of its workers' JSON (as the primary relays it).
 */
import { AggregatorRegistry, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LocalHistogram } from '../../src/http/local-histogram.js';

const NAME = 'imprint_http_request_duration_seconds';
const HELP = 'HTTP request duration by route, method and status class';
const LABELS = ['route', 'method', 'status_class'];
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Label values and a duration: below, on (a bound is inclusive), between and above the bounds, series first seen in turn. */
type Observation = readonly [route: string, method: string, statusClass: string, seconds: number];
const WORKER_ONE: readonly Observation[] = [
  ['/ocsp', 'POST', '2xx', 0.0001],
  ['/v1/enroll', 'POST', '4xx', 0.0005],
  ['/ocsp', 'POST', '2xx', 0.003],
  ['/ocsp/*', 'GET', '2xx', 7],
  ['/v1/enroll', 'POST', '2xx', 0.0011],
  ['/ocsp', 'POST', '2xx', 5],
  ['unmatched', 'GET', '4xx', 0.1 + 0.2],
];
const WORKER_TWO: readonly Observation[] = [
  ['/v1/enroll', 'POST', '2xx', 0.02],
  ['/ocsp', 'POST', '2xx', 0.00049],
  ['/metrics', 'GET', '2xx', 1],
];

/** A registry holding one histogram of each kind that saw `observations`. */
function registries(observations: readonly Observation[]): { theirs: Registry; ours: Registry } {
  const theirs = new Registry();
  const ours = new Registry();
  const histogram = new Histogram({ name: NAME, help: HELP, labelNames: LABELS, buckets: BUCKETS, registers: [theirs] });
  const local = new LocalHistogram({ name: NAME, help: HELP, labelNames: LABELS, buckets: BUCKETS, registers: [ours] });
  for (const [route, method, statusClass, seconds] of observations) {
    histogram.labels(route, method, statusClass).observe(seconds);
    local.labels(route, method, statusClass).observe(seconds);
  }
  return { theirs, ours };
}

/** A worker's metrics as the primary relays them: JSON over the IPC channel. */
const relayed = async (registry: Registry) => JSON.parse(JSON.stringify(await registry.getMetricsAsJSON())) as Parameters<typeof AggregatorRegistry.aggregate>[0][number];

describe('LocalHistogram', () => {
  it('one process: the exposition text is prom-client Histogram\'s, byte for byte', async () => {
    const { theirs, ours } = registries(WORKER_ONE);
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain(`${NAME}_bucket{le="0.0005",route="/v1/enroll",method="POST",status_class="4xx"} 1`);
    expect(text).toContain(`${NAME}_bucket{le="+Inf",route="/ocsp",method="POST",status_class="2xx"} 3`);
  });

  it('a cluster: the workers\' JSON adds up to what Histogram\'s does', async () => {
    const one = registries(WORKER_ONE);
    const two = registries(WORKER_TWO);
    const theirs = AggregatorRegistry.aggregate([await relayed(one.theirs), await relayed(two.theirs)]);
    const ours = AggregatorRegistry.aggregate([await relayed(one.ours), await relayed(two.ours)]);
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain(`${NAME}_count{route="/ocsp",method="POST",status_class="2xx"} 4`);
  });

  it('nothing observed: the metric shows its help and type and no series, as Histogram does', async () => {
    const { theirs, ours } = registries([]);
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});
