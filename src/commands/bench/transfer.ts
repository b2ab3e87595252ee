import {Flags} from '@oclif/core'

import {benchTransferOptions} from '../../bench/transfer/options.js'
import {runTransferBench} from '../../bench/transfer/orchestrator.js'
import type {BenchTransferResult} from '../../bench/transfer/types.js'
import {HpdCommand} from '../../cli/hpd-command.js'
import {benchTransferText, showBenchTransfer} from '../../ui/bench-transfer-render.js'

export default class BenchTransfer extends HpdCommand<BenchTransferResult> {
  static override summary = 'Verified KV + SSM-state transfers between a prefill and a decode process, against memcpy'
  static override description =
    'Starts a prefill-side and a decode-side process (caches laid out by the layout engine, moved by the KV link), fills every FA block and SSM sub-region with a position-keyed pattern, runs the real read plan per request, notifies, verifies, and reports GB/s, p50/p99 and the ratio to memcpy of the same bytes measured in the same run. --path serve runs serving\'s exact per-request path. With --etcd, run it once on each of two hosts (--role prefill on one, --role decode on the other): they meet through etcd and measure that network path.'
  static override examples = [
    '<%= config.bin %> bench transfer --model nemotron-h-8b',
    '<%= config.bin %> bench transfer --model tiny-hybrid --tp 4 --decode-tp 2 --prompt-tokens 512,4096',
    '<%= config.bin %> bench transfer --model nemotron-h-8b --transport tcp --prompt-tokens 4096 --json',
    '<%= config.bin %> bench transfer --model tiny-hybrid --inject-fault corrupt',
    '<%= config.bin %> bench transfer --model ./config.json --tp 4 --decode-tp 2 --kv-cache-dtype fp8 --block-size 32',
    '<%= config.bin %> bench transfer --model ./config.json --tp 4 --decode-tp 2 --kv-cache-dtype bf16 --mamba-cache-dtype bf16 --mamba-ssm-dtype fp32',
    '<%= config.bin %> bench transfer --model nemotron-h-8b --path serve --lists pair --verify digest',
    'HPD_AUTH_TOKEN=$(cat token) <%= config.bin %> bench transfer --model nemotron-h-8b --etcd http://10.0.0.5:2379 --cluster b1 --role prefill --listen 10.0.0.11:7400',
    'HPD_AUTH_TOKEN=$(cat token) <%= config.bin %> bench transfer --model nemotron-h-8b --etcd http://10.0.0.5:2379 --cluster b1 --role decode --listen 10.0.0.12',
  ]
  static override flags = {
    model: Flags.string({description: 'preset name, config.json path or model directory', required: true, env: 'HPD_MODEL'}),
    tp: Flags.integer({description: 'prefill tensor-parallel size', default: 1, env: 'HPD_TP'}),
    'decode-tp': Flags.integer({description: 'decode tensor-parallel size (default: --tp)', env: 'HPD_DECODE_TP'}),
    'prompt-tokens': Flags.string({description: 'comma-separated prompt lengths, one case each', default: '512,4096', env: 'HPD_PROMPT_TOKENS'}),
    requests: Flags.integer({description: 'measured requests per case (after one warm-up request)', default: 8, env: 'HPD_REQUESTS'}),
    transport: Flags.string({description: 'auto (UCX picks) | shm | tcp', default: 'auto', env: 'HPD_TRANSPORT'}),
    'tcp-segment-bytes': Flags.integer({description: 'UCX TCP segment size; 0 = UCX defaults (8K/64K)', default: 262_144, env: 'HPD_TCP_SEGMENT_BYTES'}),
    'read-protocol': Flags.string({description: 'auto (served over TCP, GET over shared memory/RDMA) | get | served', default: 'auto', env: 'HPD_READ_PROTOCOL'}),
    verify: Flags.string({description: 'full (every byte) | digest (per-block digests) | off', default: 'full', env: 'HPD_VERIFY'}),
    'inject-fault': Flags.string({description: 'corrupt | stale | short | kill-peer: prove the checks catch it', env: 'HPD_INJECT_FAULT'}),
    'attention-backend': Flags.string({description: 'attention kernel backend whose block sizes the layout uses', default: 'cpu', env: 'HPD_ATTENTION_BACKEND'}),
    'kv-cache-dtype': Flags.string({description: "K/V cache dtype of both sides: auto | bf16 | fp16 | fp32 | fp8 (auto: the CPU engine's fp32 with --attention-backend cpu, else the model dtype)", default: 'auto', env: 'HPD_KV_CACHE_DTYPE'}),
    'mamba-cache-dtype': Flags.string({description: "Mamba conv state dtype of both sides: auto | bf16 | fp16 | fp32 (auto: fp32 with --attention-backend cpu, else config mamba_cache_dtype / model dtype)", default: 'auto', env: 'HPD_MAMBA_CACHE_DTYPE'}),
    'mamba-ssm-dtype': Flags.string({description: "Mamba SSM state dtype of both sides: auto | bf16 | fp16 | fp32 (auto: fp32 with --attention-backend cpu, else config / family default)", default: 'auto', env: 'HPD_MAMBA_SSM_DTYPE'}),
    'block-size': Flags.integer({description: 'requested logical block size in tokens (hybrids grow it per TP size)', env: 'HPD_BLOCK_SIZE'}),
    'timeout-ms': Flags.integer({description: 'deadline of every read, notification and worker step', default: 10_000, env: 'HPD_TIMEOUT_MS'}),
    path: Flags.string({description: 'case (contiguous blocks, lists once per case) | serve (serving\'s per-request path: pooled shuffled blocks, lists per request or per engine pair)', default: 'case', env: 'HPD_BENCH_PATH'}),
    lists: Flags.string({description: '--path serve: request (lists per request) | pair (per engine pair, as NIXL)', env: 'HPD_LISTS'}),
    seed: Flags.integer({description: '--path serve: seed of the shuffled block pools', default: 1, env: 'HPD_SEED'}),
    etcd: Flags.string({description: 'across hosts: etcd endpoints (URL[,URL…]) the two sides meet through', env: 'HPD_ETCD'}),
    cluster: Flags.string({description: 'across hosts: cluster name (etcd key prefix /hpd/<cluster>/)', default: 'default', env: 'HPD_CLUSTER'}),
    role: Flags.string({description: 'across hosts: the side this process runs (prefill | decode)', env: 'HPD_ROLE'}),
    listen: Flags.string({description: 'across hosts: an address of this host the other side reaches (prefill: HOST:PORT of its control socket)', env: 'HPD_LISTEN'}),
    'auth-token-file': Flags.string({description: 'across hosts: file holding the cluster token both sides prove (or set HPD_AUTH_TOKEN)'}),
    insecure: Flags.boolean({description: 'across hosts: run without the cluster token, knowingly', default: false}),
    'wait-ms': Flags.integer({description: 'across hosts: how long one side waits for the other', default: 120_000, env: 'HPD_WAIT_MS'}),
  }

  async run(): Promise<BenchTransferResult> {
    const {flags} = await this.parse(BenchTransfer)
    const options = benchTransferOptions({
      model: flags.model,
      tp: flags.tp,
      decodeTp: flags['decode-tp'],
      promptTokens: flags['prompt-tokens'],
      requests: flags.requests,
      transport: flags.transport,
      tcpSegmentBytes: flags['tcp-segment-bytes'],
      readProtocol: flags['read-protocol'],
      verify: flags.verify,
      injectFault: flags['inject-fault'],
      attentionBackend: flags['attention-backend'],
      kvCacheDtype: flags['kv-cache-dtype'],
      mambaCacheDtype: flags['mamba-cache-dtype'],
      mambaSsmDtype: flags['mamba-ssm-dtype'],
      blockSize: flags['block-size'],
      timeoutMs: flags['timeout-ms'],
      path: flags.path,
      lists: flags.lists,
      seed: flags.seed,
      etcd: flags.etcd,
      cluster: flags.cluster,
      role: flags.role,
      listen: flags.listen,
      authTokenFile: flags['auth-token-file'],
      insecure: flags.insecure,
      waitMs: flags['wait-ms'],
    })
    const result = await showBenchTransfer(runTransferBench(options), this.jsonEnabled())
    this.print(benchTransferText(result))
    if (options.verify === 'off') this.addWarning('--verify off: the bytes read were not checked')
    return result
  }
}
