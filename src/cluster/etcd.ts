/**
 * The etcd client hpd uses (etcd3 over gRPC): every unary call bounded, connection failures as
 * typed errors naming the endpoints. Keys live under /hpd/<cluster>/ (record.ts).
 */
import {Etcd3} from 'etcd3'

import {EnvironmentError, UsageError} from '../errors.js'

/** Bound on one etcd call (a get, a put, a lease grant). */
export const ETCD_CALL_TIMEOUT_MS = 5000

export interface EtcdEndpoints {
  /** e.g. ["http://10.0.0.5:2379"]. */
  readonly urls: readonly string[]
}

/** `--etcd URL[,URL…]` → endpoints; refuses anything that is not an http(s) URL. */
export function parseEtcdFlag(flag: string): EtcdEndpoints {
  const urls = flag.split(',').map((u) => u.trim()).filter((u) => u !== '')
  if (urls.length === 0) throw new UsageError('HPD_ETCD_BAD_FLAG', '--etcd names no endpoint', {hint: 'Pass --etcd http://HOST:2379 (several separated by commas).'})
  for (const u of urls) {
    let parsed: URL
    try {
      parsed = new URL(u)
    } catch {
      throw new UsageError('HPD_ETCD_BAD_FLAG', `--etcd ${u.slice(0, 100)} is not a URL`, {hint: 'Pass --etcd http://HOST:2379.', details: {flag: 'etcd'}})
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new UsageError('HPD_ETCD_BAD_FLAG', `--etcd ${u.slice(0, 100)}: only http:// and https:// endpoints are supported`, {hint: 'Pass --etcd http://HOST:2379.', details: {flag: 'etcd'}})
    }
  }
  return {urls}
}

export function etcdClient(e: EtcdEndpoints): Etcd3 {
  return new Etcd3({
    hosts: [...e.urls],
    dialTimeout: ETCD_CALL_TIMEOUT_MS,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : {deadline: Date.now() + ETCD_CALL_TIMEOUT_MS}),
  })
}

/** Fails fast (typed, naming the endpoints) when etcd cannot be reached within the call bound. */
export async function checkReachable(client: Etcd3, e: EtcdEndpoints): Promise<void> {
  try {
    await client.get('/hpd/.reachability').string()
  } catch (error) {
    throw unreachable(e, error)
  }
}

export function unreachable(e: EtcdEndpoints, error: unknown): EnvironmentError {
  return new EnvironmentError('HPD_ETCD_UNREACHABLE', `etcd at ${e.urls.join(', ')} is unreachable: ${(error as Error).message.slice(0, 200)}`, {
    hint: 'Start etcd (Debian: `apt install etcd-server`), or check --etcd and that this host can reach it.',
    details: {endpoints: e.urls},
  })
}
