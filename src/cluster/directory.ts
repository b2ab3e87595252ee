/**
 * The workers of a cluster as etcd knows them: a snapshot of `/hpd/<cluster>/workers/` and a watch
 * from its revision, so nothing is missed between the two. Keys that do not parse as worker records
 * are ignored. When etcd goes away the directory keeps the last known workers (the router keeps
 * serving with them), says so (`etcdUp`, the 'etcd' event), and the watch resumes when etcd
 * returns; a watch that cannot resume (history compacted) is replaced by a fresh snapshot.
 */
import {EventEmitter} from 'node:events'

import type {Etcd3, Watcher} from 'etcd3'

import {parseRecord, workersPrefix, type WorkerRecord} from './record.js'

export interface DirectoryEvents {
  added: [record: WorkerRecord]
  /** The key disappeared (lease expired, worker stopped) or was replaced by another epoch. */
  removed: [record: WorkerRecord]
  etcd: [up: boolean]
}

export interface DirectoryOptions {
  readonly client: Etcd3
  readonly cluster: string
  readonly log: (event: string, fields: Record<string, unknown>) => void
}

export class ClusterDirectory extends EventEmitter<DirectoryEvents> {
  private readonly byKey = new Map<string, WorkerRecord>()
  private watcher: Watcher | undefined
  private closed = false
  private resync: NodeJS.Timeout | undefined
  /** A recovery chain (restart with backoff) is running. */
  private restarting = false
  etcdUp = true
  etcdDownSinceMs: number | undefined

  private constructor(private readonly o: DirectoryOptions) {
    super()
  }

  /** Reads the current workers and starts watching (throws when etcd cannot answer now). */
  static async start(o: DirectoryOptions): Promise<ClusterDirectory> {
    const d = new ClusterDirectory(o)
    await d.snapshotAndWatch()
    return d
  }

  records(): WorkerRecord[] {
    return [...this.byKey.values()]
  }

  /** Re-reads the prefix now (the watch keeps running): for a caller that cannot wait for it. */
  async refresh(): Promise<void> {
    await this.applySnapshot()
  }

  /** Replaces the records with the prefix as etcd holds it now; returns the revision read. */
  private async applySnapshot(): Promise<bigint> {
    const snapshot = await this.o.client.getAll().prefix(workersPrefix(this.o.cluster)).exec()
    const seen = new Set<string>()
    for (const kv of snapshot.kvs) {
      const key = kv.key.toString()
      seen.add(key)
      this.upsert(key, kv.value.toString())
    }
    for (const key of [...this.byKey.keys()]) if (!seen.has(key)) this.remove(key)
    return BigInt(snapshot.header.revision)
  }

  private async snapshotAndWatch(): Promise<void> {
    const prefix = workersPrefix(this.o.cluster)
    const revision = (await this.applySnapshot()) + 1n
    const watcher = await this.o.client.watch().prefix(prefix).startRevision(revision.toString()).create()
    if (this.closed) {
      await watcher.cancel().catch(() => undefined)
      return
    }
    this.watcher = watcher
    watcher.on('put', (kv) => this.upsert(kv.key.toString(), kv.value.toString()))
    watcher.on('delete', (kv) => this.remove(kv.key.toString()))
    watcher.on('disconnected', () => this.setUp(false))
    watcher.on('connected', () => this.setUp(true))
    watcher.on('error', (error) => {
      // A replaced watcher's late errors are not this directory's state any more.
      if (watcher !== this.watcher) return
      this.o.log('etcd-watch-failed', {message: error.message.slice(0, 200)})
      this.setUp(false)
      this.recover()
    })
    this.setUp(true)
  }

  /** The watch failed: one recovery chain at a time (chains would multiply at every failure). */
  private recover(): void {
    if (this.restarting || this.closed) return
    this.restarting = true
    void this.restart()
  }

  /** A fresh snapshot and watch, retried with backoff until etcd answers. */
  private async restart(delayMs = 500): Promise<void> {
    const old = this.watcher
    this.watcher = undefined
    await old?.cancel().catch(() => undefined)
    if (this.closed) return
    try {
      await this.snapshotAndWatch()
      this.restarting = false
    } catch {
      this.resync = setTimeout(() => void this.restart(Math.min(delayMs * 2, 5000)), delayMs)
      this.resync.unref()
    }
  }

  private upsert(key: string, text: string): void {
    const record = parseRecord(text)
    if (!record) {
      this.o.log('etcd-record-ignored', {key: key.slice(0, 200)})
      return
    }
    const old = this.byKey.get(key)
    if (old && old.engineEpoch === record.engineEpoch && old.controlUrl === record.controlUrl) return
    this.byKey.set(key, record)
    if (old) this.emit('removed', old)
    this.emit('added', record)
  }

  private remove(key: string): void {
    const old = this.byKey.get(key)
    if (!old) return
    this.byKey.delete(key)
    this.emit('removed', old)
  }

  private setUp(up: boolean): void {
    if (this.etcdUp === up) return
    this.etcdUp = up
    this.etcdDownSinceMs = up ? undefined : Date.now()
    this.o.log(up ? 'etcd-reconnected' : 'etcd-unreachable', {cluster: this.o.cluster})
    this.emit('etcd', up)
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.resync)
    await this.watcher?.cancel().catch(() => undefined)
    this.watcher = undefined
  }
}
