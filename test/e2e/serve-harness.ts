/**
 * Starts `hpd serve` as a real process (node bin/run.js serve --json-logs --port 0), learns its
 * URL and worker pids from the JSON log lines, and stops it. Shared by test/e2e/serve*.test.ts.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {createInterface} from 'node:readline'

import {afterAll} from 'vitest'

import {AUTH_HEADER, signCall} from '../../src/serve/auth.js'

export const ROOT = join(import.meta.dirname, '..', '..')
/** One generated-model cache for every serve test file (the tiny models are generated once). */
export const CACHE_DIR = process.env.HPD_CACHE_DIR ?? join(tmpdir(), 'hpd-e2e-serve-cache')

export interface ServeProcess {
  readonly url: string
  readonly proc: ChildProcess
  /** Latest pid and state per worker name. */
  readonly workers: Map<string, {pid: number | undefined; state: string}>
  /** Latest control URL per worker name (from the workers' own "ready" log lines). */
  readonly controlUrls: Map<string, string>
  readonly lines: string[]
  /** Resolves when the worker reaches `state` (bounded). */
  waitWorker(name: string, state: string, timeoutMs?: number): Promise<void>
  stop(): Promise<{exitCode: number | null; stopMs: number}>
}

export async function startServe(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<ServeProcess> {
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'run.js'), 'serve', '--json-logs', '--port', '0', ...args], {
    cwd: ROOT,
    env: {...process.env, HPD_CACHE_DIR: CACHE_DIR, ...env},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const workers = new Map<string, {pid: number | undefined; state: string}>()
  const controlUrls = new Map<string, string>()
  const lines: string[] = []
  const listeners = new Set<() => void>()
  let url: string | undefined
  createInterface({input: proc.stderr!}).on('line', (line) => {
    lines.push(line)
    try {
      // A worker's own JSON log lines arrive as their fields plus `source` (the worker's name).
      const ev = JSON.parse(line) as {event?: string; url?: string; worker?: string; pid?: number; state?: string; source?: string; controlUrl?: string}
      if (ev.event === 'serving' && !ev.source) url = ev.url
      if (ev.event === 'worker-state' && ev.worker) workers.set(ev.worker, {pid: ev.pid, state: ev.state!})
      if (ev.source && ev.event === 'ready' && ev.controlUrl) controlUrls.set(ev.source, ev.controlUrl)
    } catch {
      // a non-JSON line (should not happen with --json-logs); kept in `lines` for diagnostics
    }
    for (const l of listeners) l()
  })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hpd serve did not start within ${timeoutMs} ms:\n${lines.slice(-20).join('\n')}`)), timeoutMs)
    const check = () => {
      if (url) {
        clearTimeout(timer)
        listeners.delete(check)
        resolve()
      }
    }
    listeners.add(check)
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`hpd serve exited (${code}) before serving:\n${lines.slice(-20).join('\n')}`))
    })
  })
  return {
    url: url!,
    proc,
    workers,
    controlUrls,
    lines,
    waitWorker: (name, state, waitMs = 30_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name} did not become ${state} within ${waitMs} ms`)), waitMs)
        const check = () => {
          if (workers.get(name)?.state === state) {
            clearTimeout(timer)
            listeners.delete(check)
            resolve()
          }
        }
        listeners.add(check)
        check()
      }),
    stop: async () => {
      const t0 = performance.now()
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
      const exitCode = await exited
      clearTimeout(killer)
      return {exitCode, stopMs: performance.now() - t0}
    },
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Polls `f` every 100 ms until it returns a value, bounded by `timeoutMs`. */
export async function until<T>(f: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await f()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export function tmpDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Headers of a call signed with the cluster token (as hpd's own control client signs them). */
export function signedHeaders(token: string, method: string, url: string): Record<string, string> {
  const u = new URL(url)
  return {[AUTH_HEADER]: signCall(token, method, `${u.pathname}${u.search}`).header}
}

/** A per-worker gauge or counter from a router's /metrics (`url`: the router's base URL); NaN when absent. */
export async function workerMetric(url: string, name: string, worker: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return Number(new RegExp(`^${name}\\{worker="${worker}",role="[a-z]+"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
}

/** startServe for one test file: every server it starts is stopped when the file's tests end. */
export function servesForFile(): (args: readonly string[], env?: Record<string, string>) => Promise<ServeProcess> {
  const running: ServeProcess[] = []
  afterAll(async () => {
    await Promise.all(running.splice(0).map((s) => s.stop()))
  })
  return async (args, env = {}) => {
    const s = await startServe(args, env)
    running.push(s)
    return s
  }
}
