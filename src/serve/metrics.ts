/**
 * Router-side serving metrics. Two consumers, kept apart: Prometheus (`/metrics`, through
 * prom-client, names checked by `promtool check metrics`) and the dashboard (percentiles over a
 * window of recent samples). Latencies are observed once and feed both; counts are plain fields
 * the router increments, read by prom-client when it renders. Latencies in seconds (Prometheus
 * convention).
 */
import {Counter, Gauge, Histogram, Registry} from 'prom-client'

import {percentiles} from '../percentiles.js'

export {percentiles}

/** Latency bucket bounds in seconds: wide enough for a CPU model, fine enough near the ms range. */
export const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** How many recent samples a window keeps for the dashboard's percentiles (older ones fall off). */
const RECENT_SAMPLES = 4096

/** One latency: a Prometheus histogram and the dashboard's window of recent samples. */
export class Latency {
  private readonly histogram: Histogram
  private readonly recent: number[] = []
  private next = 0
  private total = 0

  constructor(registry: Registry, name: string, help: string) {
    this.histogram = new Histogram({name, help, buckets: LATENCY_BUCKETS_S, registers: [registry]})
  }

  observe(seconds: number): void {
    this.histogram.observe(seconds)
    this.total++
    if (this.recent.length < RECENT_SAMPLES) this.recent.push(seconds)
    else {
      this.recent[this.next] = seconds
      this.next = (this.next + 1) % RECENT_SAMPLES
    }
  }

  get count(): number {
    return this.total
  }

  /** Percentiles (0..100) over the recent samples, in seconds; undefined when empty. */
  percentiles(ps: readonly number[]): (number | undefined)[] {
    return percentiles(this.recent, ps)
  }
}

/** A counter whose value is read when scraped (prom-client counters only go up by inc). */
export function collectedCounter(registry: Registry, name: string, help: string, value: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset()
      this.inc(value())
    },
  })
}

/** A gauge whose value is read when scraped. */
export function collectedGauge(registry: Registry, name: string, help: string, value: () => number): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(value())
    },
  })
}

export interface WorkerGauge {
  readonly name: string
  readonly role: string
  readonly state: string
  readonly inFlight: number
  readonly kvBlocksUsed: number
  readonly kvBlocksTotal: number
  readonly leasesHeld: number
  readonly leasesExpired: number
  readonly transferBytes: number
  readonly transferMs: number
  /** --verify-transfers: transfers verified, and the milliseconds verifying took in all. */
  readonly verifiedTransfers?: number
  readonly verifyMs?: number
  readonly restarts: number
  readonly budgetExhausted: number
}

export class ServeMetrics {
  readonly registry = new Registry()
  readonly ttft = new Latency(this.registry, 'hpd_time_to_first_token_seconds', 'Time to first token.')
  readonly itl = new Latency(this.registry, 'hpd_inter_token_latency_seconds', 'Time between consecutive output tokens.')
  readonly e2e = new Latency(this.registry, 'hpd_e2e_request_latency_seconds', 'End-to-end request latency.')
  /** Handshake + transfer time per disaggregated request (part of TTFT). */
  readonly kvTransfer = new Latency(this.registry, 'hpd_kv_transfer_seconds', 'Handshake plus KV transfer time per disaggregated request.')
  requestsOk = 0
  requestsFailed = 0
  requestsRejected = 0
  inFlight = 0
  promptTokens = 0
  generationTokens = 0
  transferBytes = 0
  /** Sum of TTFT and of handshake+transfer time over disaggregated requests, for the TTFT share. */
  ttftSecondsDisagg = 0
  kvTransferSeconds = 0
  readonly startedAtMs = Date.now()
  /** The dashboard's per-worker rows (refreshed by the server's snapshot). */
  workers: readonly WorkerGauge[] = []
  /** Cluster mode: whether etcd answers (1/0); undefined without etcd. */
  etcdUp: number | undefined
  /** Prefix-aware routing: requests sent where part of the prompt was cached, those tokens, KV-event batches received. */
  routing = {prefixRouted: () => 0, prefixRoutedTokens: () => 0, kvEventBatches: () => 0}

  constructor() {
    const m = this
    const reg = [this.registry]
    new Counter({
      name: 'hpd_requests_total',
      help: 'Requests by outcome.',
      labelNames: ['outcome'],
      registers: reg,
      collect() {
        this.reset()
        this.inc({outcome: 'ok'}, m.requestsOk)
        this.inc({outcome: 'error'}, m.requestsFailed)
        this.inc({outcome: 'rejected'}, m.requestsRejected)
      },
    })
    const counter = (name: string, help: string, value: () => number) => collectedCounter(this.registry, name, help, value)
    counter('hpd_prompt_tokens_total', 'Prompt tokens processed.', () => m.promptTokens)
    counter('hpd_generation_tokens_total', 'Tokens generated.', () => m.generationTokens)
    counter('hpd_kv_transfer_bytes_total', 'KV cache and SSM state bytes pulled by decode workers.', () => m.transferBytes)
    counter('hpd_disagg_ttft_seconds_total', 'Sum of TTFT over disaggregated requests (compare with hpd_kv_transfer_seconds_sum).', () => m.ttftSecondsDisagg)
    collectedGauge(this.registry, 'hpd_requests_in_flight', 'Requests being served now.', () => m.inFlight)
    counter('hpd_prefix_routed_requests_total', 'Worker choices (prefill, decode or colocated legs) that went to a worker holding part of the prompt (prefix-aware routing).', () => m.routing.prefixRouted())
    counter('hpd_prefix_routed_tokens_total', 'Prompt tokens the chosen workers held, over those choices.', () => m.routing.prefixRoutedTokens())
    counter('hpd_kv_event_batches_total', 'KV-event batches received from the workers (prefix-aware routing).', () => m.routing.kvEventBatches())
    new Gauge({
      name: 'hpd_etcd_up',
      help: 'Whether the worker registry (etcd) answers; while it does not, the router serves with the workers it knew. Absent without etcd.',
      registers: reg,
      collect() {
        this.reset()
        if (m.etcdUp !== undefined) this.set(m.etcdUp)
      },
    })
    const perWorker = (kind: 'gauge' | 'counter', name: string, help: string, value: (g: WorkerGauge) => number) => {
      const collect = function (this: Gauge | Counter) {
        this.reset()
        for (const g of m.workers) {
          const labels = {worker: g.name, role: g.role}
          if (this instanceof Gauge) this.set(labels, value(g))
          else this.inc(labels, value(g))
        }
      }
      return kind === 'gauge' ? new Gauge({name, help, labelNames: ['worker', 'role'], registers: reg, collect}) : new Counter({name, help, labelNames: ['worker', 'role'], registers: reg, collect})
    }
    perWorker('gauge', 'hpd_worker_up', 'Worker is healthy (1) or not (0).', (g) => (g.state === 'ready' ? 1 : 0))
    perWorker('gauge', 'hpd_worker_in_flight', 'Requests in flight per worker.', (g) => g.inFlight)
    perWorker('gauge', 'hpd_kv_blocks_used', 'KV pool blocks in use per worker.', (g) => g.kvBlocksUsed)
    perWorker('gauge', 'hpd_kv_blocks_capacity', 'KV pool blocks per worker.', (g) => g.kvBlocksTotal)
    perWorker('gauge', 'hpd_leases_held', 'Prefill-side block leases held per worker.', (g) => g.leasesHeld)
    perWorker('counter', 'hpd_leases_expired_total', 'Prefill-side leases that ran out (blocks reclaimed without a decode notification), since the worker started.', (g) => g.leasesExpired)
    perWorker('counter', 'hpd_kv_verified_transfers_total', 'Transfers a decode worker verified (--verify-transfers: the digests of both sides compared).', (g) => g.verifiedTransfers ?? 0)
    perWorker('counter', 'hpd_kv_verify_seconds_total', 'Time those verifications took (both sides\' digests and the round trip to the prefill worker).', (g) => (g.verifyMs ?? 0) / 1000)
    perWorker('counter', 'hpd_worker_restarts_total', 'Restarts of a worker after it died while serving.', (g) => g.restarts)
    perWorker('counter', 'hpd_worker_restart_budget_exhausted_total', 'Restarts past the restart budget (each waited an exponential backoff).', (g) => g.budgetExhausted)
  }

  /** The Prometheus text exposition. */
  renderPrometheus(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }
}
