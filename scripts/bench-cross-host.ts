// `npm run bench:cross-host [-- bench transfer flags]`: hpd's KV transfer between two hosts made of
// network namespaces, against a plain TCP copy of the same bytes between the same two namespaces,
// in the same run (a benchmark, not a test; needs root, iproute2 and etcd-server).
//
// It builds a network (test/e2e/netns-harness.ts: hosts "etcd", "prefill", "decode" on a bridge,
// addresses from 198.18.0.0/15) and a throwaway etcd (test/e2e/etcd-harness.ts), runs
// `hpd bench transfer --etcd … --role prefill` in one namespace and `--role decode` in the other
// (TCP: namespaces share /dev/shm, real hosts would not), then `scripts/tcp-copy.mjs` between the
// same two, per case with that case's bytes per request, and prints GB/s of both and the ratio
// (target >= 0.9x). Every namespace it made is deleted at the end, also on failure or Ctrl-C.
//
// Defaults: --model nemotron-h-8b --prompt-tokens 4096 --requests 8 --verify digest, and the
// checkpoint's bf16 K/V and conv state (--kv-cache-dtype bf16 --mamba-cache-dtype bf16; the `cpu`
// backend's own default is the CPU engine's fp32), as the README's numbers were measured; any flag given
// replaces its default (e.g. `npm run bench:cross-host -- --path serve --prompt-tokens 512,4096`).
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {execa} from 'execa'

import {etcdMissing, startEtcd, type Etcd} from '../test/e2e/etcd-harness.js'
import {createNetwork, netnsUnavailable, type TestNetwork} from '../test/e2e/netns-harness.js'
import {ROOT, tmpDir} from '../test/e2e/serve-harness.js'

const BIN = join(ROOT, 'bin', 'run.js')
const TOKEN = `bench-cross-host-${Date.now()}-0123456789abcdef`

interface CaseResult {
  promptTokens: number
  bytesPerRequest: number
  requests: number
  gbPerSecond: number
  bestGbPerSecond: number
  p50Ms: number
  verifyMsP50?: number
}

function withDefaults(args: string[]): string[] {
  const given = new Set(args.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0]))
  const defaults: [string, string][] = [['--model', 'nemotron-h-8b'], ['--prompt-tokens', '4096'], ['--requests', '8'], ['--verify', 'digest'], ['--kv-cache-dtype', 'bf16'], ['--mamba-cache-dtype', 'bf16']]
  return [...defaults.filter(([k]) => !given.has(k)).flat(), ...args]
}

async function main(): Promise<void> {
  const why = netnsUnavailable() ?? etcdMissing()
  if (why) {
    console.error(`bench:cross-host cannot run here: ${why}`)
    process.exit(2)
  }
  const args = withDefaults(process.argv.slice(2))
  let net: TestNetwork | undefined
  let etcd: Etcd | undefined
  const cleanup = async () => {
    await etcd?.destroy()
    await net?.destroy()
  }
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)))
  try {
    net = await createNetwork(['etcd', 'prefill', 'decode'])
    const host = (n: string) => net!.hosts.get(n)!
    etcd = await startEtcd({host: host('etcd').address, clientPort: 2379, peerPort: 2380, wrap: ['ip', 'netns', 'exec', host('etcd').ns]})
    const tokenFile = join(tmpDir('hpd-cross-host-'), 'token')
    writeFileSync(tokenFile, TOKEN, {mode: 0o600})
    const side = (role: 'prefill' | 'decode', listen: string) =>
      execa('ip', ['netns', 'exec', host(role).ns, process.execPath, BIN, 'bench', 'transfer', ...args, '--transport', 'tcp', '--etcd', etcd!.url, '--cluster', 'bench', '--role', role, '--listen', listen, '--auth-token-file', tokenFile, '--json'], {
        reject: false,
        env: {CI: '1'},
      })
    console.error(`hosts: prefill ${host('prefill').address}, decode ${host('decode').address}, etcd ${etcd.url}; bench transfer ${args.join(' ')} --transport tcp`)
    const [p, d] = await Promise.all([side('prefill', `${host('prefill').address}:7400`), side('decode', host('decode').address)])
    const decode = JSON.parse(d.stdout) as {ok: boolean; result?: {readProtocol: string; cases: CaseResult[]}; error?: unknown}
    const prefill = JSON.parse(p.stdout) as {ok: boolean; error?: unknown}
    if (!decode.ok || !prefill.ok) throw new Error(`bench transfer failed: decode ${JSON.stringify(decode.error ?? 'ok')}, prefill ${JSON.stringify(prefill.error ?? 'ok')}\n${d.stderr.slice(-2000)}\n${p.stderr.slice(-2000)}`)

    // The plain TCP copy of the same bytes, per case, between the same two namespaces.
    const rows: string[] = []
    for (const c of decode.result!.cases) {
      const port = 7500 + rows.length
      const server = execa('ip', ['netns', 'exec', host('prefill').ns, process.execPath, join(ROOT, 'scripts', 'tcp-copy.mjs'), 'serve', host('prefill').address, String(port), String(c.bytesPerRequest)], {reject: false, buffer: false, stdout: 'pipe'})
      await new Promise<void>((resolve) => server.stdout!.once('data', () => resolve()))
      const fetched = await execa('ip', ['netns', 'exec', host('decode').ns, process.execPath, join(ROOT, 'scripts', 'tcp-copy.mjs'), 'fetch', host('prefill').address, String(port), String(c.bytesPerRequest), String(c.requests)])
      server.kill('SIGTERM')
      await server
      const tcp = JSON.parse(fetched.stdout) as {gbPerSecond: number; bestGbPerSecond: number; p50Ms: number}
      rows.push(
        [
          String(c.promptTokens).padStart(7),
          `${(c.bytesPerRequest / 2 ** 20).toFixed(1)} MiB`.padStart(10),
          c.gbPerSecond.toFixed(3).padStart(9),
          tcp.gbPerSecond.toFixed(3).padStart(9),
          `${(c.gbPerSecond / tcp.gbPerSecond).toFixed(2)}x`.padStart(7),
          `${(c.bestGbPerSecond / tcp.bestGbPerSecond).toFixed(2)}x`.padStart(10),
          c.p50Ms.toFixed(2).padStart(8),
          tcp.p50Ms.toFixed(2).padStart(8),
          c.verifyMsP50 === undefined ? '' : c.verifyMsP50.toFixed(2).padStart(10),
        ].join('  '),
      )
    }
    console.log(`hpd bench transfer across two namespaces (reads ${decode.result!.readProtocol}) vs a plain TCP copy of the same bytes, same run (target >= 0.9x)`)
    console.log(['prompt', 'bytes/req', 'hpd GB/s', 'TCP GB/s', 'ratio', 'best ratio', 'hpd p50', 'TCP p50', 'verify p50'].map((h, i) => h.padStart([7, 10, 9, 9, 7, 10, 8, 8, 10][i])).join('  '))
    for (const r of rows) console.log(r)
  } finally {
    await cleanup()
  }
}

main().catch((error: unknown) => {
  console.error((error as Error).message)
  process.exitCode = 1
})
