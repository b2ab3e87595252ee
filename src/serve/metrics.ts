/**
 * Router-side serving metrics: Prometheus text exposition for GET /metrics and percentile
 * snapshots for the dashboard. Latencies are recorded in seconds (Prometheus convention).
 */

/** Latency bucket bounds in seconds: wide enough for a CPU model, fine enough near the ms range. */
const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** How many recent samples a histogram keeps for percentiles (older ones fall off). */
const RECENT_SAMPLES = 4096

export class Histogram {
  private readonly counts = new Array<number>(LATENCY_BUCKETS_S.length).fill(0)
  private sumSeconds = 0
  private total = 0
  private readonly recent: number[] = []
  private next = 0

  observe(seconds: number): void {
    for (let i = 0; i < LATENCY_BUCKETS_S.length; i++) if (seconds <= LATENCY_BUCKETS_S[i]) this.counts[i]++
    this.sumSeconds += seconds
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

  render(name: string, help: string): string {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`]
    LATENCY_BUCKETS_S.forEach((le, i) => lines.push(`${name}_bucket{le="${le}"} ${this.counts[i]}`))
    lines.push(`${name}_bucket{le="+Inf"} ${this.total}`, `${name}_sum ${this.sumSeconds}`, `${name}_count ${this.total}`)
    return lines.join('\n')
  }
}

/** Nearest-rank-with-interpolation percentiles, as numpy's default (what vllm bench reports). */
export function percentiles(samples: readonly number[], ps: readonly number[]): (number | undefined)[] {
  if (samples.length === 0) return ps.map(() => undefined)
  const sorted = [...samples].sort((a, b) => a - b)
  return ps.map((p) => {
    const pos = (p / 100) * (sorted.length - 1)
    const lo = Math.floor(pos)
    const hi = Math.ceil(pos)
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
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
  readonly restarts: number
  readonly budgetExhausted: number
}

export class ServeMetrics {
  readonly ttft = new Histogram()
  readonly itl = new Histogram()
  readonly e2e = new Histogram()
  /** Handshake + transfer time per disaggregated request (part of TTFT). */
  readonly kvTransfer = new Histogram()
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
  workers: readonly WorkerGauge[] = []
  /** Cluster mode: whether etcd answers (1/0); undefined without etcd. */
  etcdUp: number | undefined

  renderPrometheus(): string {
    const lines: string[] = []
    const counter = (name: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`)
      for (const [labels, v] of samples) lines.push(`${name}${labels} ${v}`)
    }
    const gauge = (name: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`)
      for (const [labels, v] of samples) lines.push(`${name}${labels} ${v}`)
    }
    counter('hpd_requests_total', 'Requests by outcome.', [
      ['{outcome="ok"}', this.requestsOk],
      ['{outcome="error"}', this.requestsFailed],
      ['{outcome="rejected"}', this.requestsRejected],
    ])
    gauge('hpd_requests_in_flight', 'Requests being served now.', [['', this.inFlight]])
    counter('hpd_prompt_tokens_total', 'Prompt tokens processed.', [['', this.promptTokens]])
    counter('hpd_generation_tokens_total', 'Tokens generated.', [['', this.generationTokens]])
    counter('hpd_disagg_time_to_first_token_seconds_sum', 'Sum of TTFT over disaggregated requests (compare with hpd_kv_transfer_seconds_sum).', [
      ['', this.ttftSecondsDisagg],
    ])
    counter('hpd_kv_transfer_bytes_total', 'KV cache and SSM state bytes pulled by decode workers.', [['', this.transferBytes]])
    lines.push(this.ttft.render('hpd_time_to_first_token_seconds', 'Time to first token.'))
    lines.push(this.itl.render('hpd_inter_token_latency_seconds', 'Time between consecutive output tokens.'))
    lines.push(this.e2e.render('hpd_e2e_request_latency_seconds', 'End-to-end request latency.'))
    lines.push(this.kvTransfer.render('hpd_kv_transfer_seconds', 'Handshake plus KV transfer time per disaggregated request.'))
    if (this.etcdUp !== undefined) gauge('hpd_etcd_up', 'Whether the worker registry (etcd) answers; while it does not, the router serves with the workers it knew.', [['', this.etcdUp]])
    const w = (f: (g: WorkerGauge) => number): [string, number][] => this.workers.map((g) => [`{worker="${g.name}",role="${g.role}"}`, f(g)])
    gauge('hpd_worker_up', 'Worker is healthy (1) or not (0).', w((g) => (g.state === 'ready' ? 1 : 0)))
    gauge('hpd_worker_in_flight', 'Requests in flight per worker.', w((g) => g.inFlight))
    gauge('hpd_kv_blocks_used', 'KV pool blocks in use per worker.', w((g) => g.kvBlocksUsed))
    gauge('hpd_kv_blocks_total', 'KV pool blocks per worker.', w((g) => g.kvBlocksTotal))
    gauge('hpd_leases_held', 'Prefill-side block leases held per worker.', w((g) => g.leasesHeld))
    counter('hpd_worker_restarts_total', 'Restarts of a worker after it died while serving.', w((g) => g.restarts))
    counter('hpd_worker_restart_budget_exhausted_total', 'Restarts past the restart budget (each waited an exponential backoff).', w((g) => g.budgetExhausted))
    gauge('hpd_leases_expired', 'Prefill-side leases that ran out (blocks reclaimed without a decode notification), since the worker started.', w((g) => g.leasesExpired))
    return `${lines.join('\n')}\n`
  }
}
