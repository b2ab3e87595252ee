/**
 * A worker's own /metrics, under the names load-aware schedulers read from vLLM engines (llm-d's
 * endpoint picker, Dynamo's router): `vllm:num_requests_running`, `vllm:num_requests_waiting`,
 * `vllm:kv_cache_usage_perc` and vLLM's latency and token families, plus the KV connector's own
 * figures under `hpd_kv_*`. Rendered by prom-client; the names pass `promtool check metrics`.
 *
 * Gauges are read when scraped (`collect`) from the roles and the engine; latencies and outcomes
 * are observed from each request's stream of events.
 */
import {Counter, Gauge, Histogram, Registry} from 'prom-client'

import type {PrefixCacheStats} from '../../engine/prefix-cache.js'

import {collectedCounter, collectedGauge, LATENCY_BUCKETS_S} from '../metrics.js'
import type {WorkerStreamEvent} from '../protocol.js'

export interface WorkerLoad {
  /** Requests being computed now (in a decode batch, or a prefill running). */
  running(): number
  /** Requests admitted but not computing yet (handshake, transfer, waiting for blocks). */
  waiting(): number
  /** KV pool use, 0..1. */
  kvUsage(): number
  leasesExpired(): number
  transferBytes(): number
  transferSeconds(): number
  /** Prefix-cache counts (undefined: prefix caching off). */
  prefixCache?(): PrefixCacheStats | undefined
}

export class WorkerMetrics {
  readonly registry = new Registry()
  private readonly ttft: Histogram
  private readonly itl: Histogram
  private readonly e2e: Histogram
  private readonly success: Counter
  private readonly failed: Counter
  private readonly promptTokens: Counter
  private readonly generationTokens: Counter
  private readonly transferFailures: Counter
  private readonly paramsIncomplete: Counter
  private readonly loadFailures: Counter
  private readonly verifyFailures: Counter
  private readonly transferReads: Counter
  private readonly transfers: Counter

  constructor(load: WorkerLoad) {
    const reg = [this.registry]
    const gauge = (name: string, help: string, value: () => number) => collectedGauge(this.registry, name, help, value)
    const counter = (name: string, help: string, value: () => number) => collectedCounter(this.registry, name, help, value)
    gauge('vllm:num_requests_running', 'Requests being computed now (in a decode batch or a running prefill).', () => load.running())
    gauge('vllm:num_requests_waiting', 'Requests admitted and waiting (handshake, KV transfer, blocks).', () => load.waiting())
    gauge('vllm:kv_cache_usage_perc', 'KV-cache pool usage, 1 = full.', () => load.kvUsage())
    this.ttft = new Histogram({name: 'vllm:time_to_first_token_seconds', help: 'Time from arrival at this worker to its first output token.', buckets: LATENCY_BUCKETS_S, registers: reg})
    this.itl = new Histogram({name: 'vllm:inter_token_latency_seconds', help: 'Time between consecutive output tokens.', buckets: LATENCY_BUCKETS_S, registers: reg})
    this.e2e = new Histogram({name: 'vllm:e2e_request_latency_seconds', help: 'Time from arrival at this worker to the end of the request.', buckets: LATENCY_BUCKETS_S, registers: reg})
    this.success = new Counter({name: 'vllm:request_success_total', help: 'Requests finished, by finish reason.', labelNames: ['finished_reason'], registers: reg})
    this.failed = new Counter({name: 'hpd_requests_failed_total', help: 'Requests that ended with an error, by code.', labelNames: ['code'], registers: reg})
    this.promptTokens = new Counter({name: 'vllm:prompt_tokens_total', help: 'Prompt tokens processed.', registers: reg})
    this.generationTokens = new Counter({name: 'vllm:generation_tokens_total', help: 'Tokens generated.', registers: reg})
    this.transferFailures = new Counter({name: 'hpd_kv_transfer_failures_total', help: 'KV pulls that failed (the request failed with kv_transfer_failed).', registers: reg})
    this.paramsIncomplete = new Counter({name: 'hpd_kv_params_incomplete_total', help: 'Decode legs whose kv_transfer_params lacked a field: computed locally.', registers: reg})
    this.loadFailures = new Counter({name: 'hpd_kv_load_failures_total', help: 'Decode legs whose KV pull failed (failed, or recomputed with --kv-load-failure-policy recompute).', registers: reg})
    this.verifyFailures = new Counter({name: 'hpd_kv_verify_failures_total', help: 'KV pulls whose digests did not match the prefill side\'s (--verify-transfers; the bytes are never served: the request failed with kv_verify_failed, or was recomputed with --kv-load-failure-policy recompute).', registers: reg})
    this.transfers = new Counter({name: 'hpd_kv_transfers_total', help: 'KV pulls that completed (one per transferred request).', registers: reg})
    this.transferReads = new Counter({name: 'hpd_kv_transfer_descriptors_total', help: 'Reads (coalesced descriptor runs) the completed KV pulls made.', registers: reg})
    counter('hpd_kv_transfer_bytes_total', 'KV cache and SSM state bytes pulled by this worker.', () => load.transferBytes())
    counter('hpd_kv_transfer_seconds_total', 'Time this worker spent pulling KV cache and SSM state.', () => load.transferSeconds())
    counter('hpd_leases_expired_total', 'Prefill leases that ran out (blocks reclaimed without a read-done notification).', () => load.leasesExpired())
    // vLLM's prefix-cache counters (tokens), per KV-cache group kind: `attention` counts the
    // attention chain found, `mamba` where requests resumed (a checkpoint) — 0 on decode workers,
    // which always pull the final state.
    const kinds = (pick: (s: PrefixCacheStats) => {attention: number; state: number}) =>
      function (this: Counter) {
        const s = load.prefixCache?.()
        this.reset()
        if (!s) return
        this.inc({kind: 'attention'}, pick(s).attention)
        this.inc({kind: 'mamba'}, pick(s).state)
      }
    new Counter({name: 'vllm:prefix_cache_queries_total', help: 'Prompt tokens looked up in the prefix cache, per KV-cache group kind.', labelNames: ['kind'], registers: reg, collect: kinds((s) => s.queriedTokens)})
    new Counter({name: 'vllm:prefix_cache_hits_total', help: 'Prompt tokens found in the prefix cache, per KV-cache group kind (mamba: where computation resumed from a checkpoint).', labelNames: ['kind'], registers: reg, collect: kinds((s) => s.hitTokens)})
    const cacheGauge = (name: string, help: string, pick: (s: PrefixCacheStats) => number) =>
      new Gauge({name, help, registers: reg, collect() {
        const s = load.prefixCache?.()
        this.set(s ? pick(s) : 0)
      }})
    new Counter({name: 'hpd_prefix_cache_evictions_total', help: 'Cached blocks (attention blocks and checkpoints) evicted under memory pressure.', registers: reg, collect() {
      this.reset()
      this.inc(load.prefixCache?.()?.evictedBlocks ?? 0)
    }})
    cacheGauge('hpd_prefix_cache_blocks', 'Attention blocks indexed by the prefix cache (in use or evictable).', (s) => s.cachedAttentionBlocks)
    cacheGauge('hpd_mamba_checkpoint_blocks', 'Mamba/GDN state checkpoints indexed by the prefix cache (one block per state group each).', (s) => s.checkpointBlocks)
    cacheGauge('hpd_mamba_checkpoint_bytes', 'Memory the indexed Mamba/GDN checkpoints take (blocks × tensors × page bytes × TP ranks).', (s) => s.checkpointBytes)
  }

  kvParamsIncomplete(): void {
    this.paramsIncomplete.inc()
  }

  kvLoadFailed(): void {
    this.loadFailures.inc()
  }

  countPrompt(tokens: number): void {
    this.promptTokens.inc(tokens)
  }

  /** Follows one request's events from its arrival; returns the function to pass them through. */
  follow(promptTokens: number): (ev: WorkerStreamEvent) => void {
    if (promptTokens > 0) this.countPrompt(promptTokens)
    const arrived = performance.now()
    let last: number | undefined
    return (ev) => {
      const now = performance.now()
      if (ev.type === 'token') {
        if (last === undefined) this.ttft.observe((now - arrived) / 1000)
        else this.itl.observe((now - last) / 1000)
        last = now
        this.generationTokens.inc()
      } else if (ev.type === 'transfer-done') {
        this.transfers.inc()
        this.transferReads.inc(ev.reads)
      } else if (ev.type === 'done') {
        this.e2e.observe((now - arrived) / 1000)
        this.success.inc({finished_reason: ev.finishReason})
      } else if (ev.type === 'error') {
        this.failed.inc({code: ev.code})
        if (ev.code === 'kv_transfer_failed') this.transferFailures.inc()
        if (ev.code === 'kv_verify_failed') this.verifyFailures.inc()
      }
    }
  }

  render(): Promise<string> {
    return this.registry.metrics()
  }
}
