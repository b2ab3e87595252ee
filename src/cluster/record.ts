/**
 * What a worker publishes about itself in etcd, and where: `/hpd/<cluster>/workers/<role>/<engineId>`
 * under a lease the worker keeps alive. Records carry no secrets (etcd may be shared): what a
 * worker is and where its control plane answers; everything else is behind the signed handshake.
 */
import {z} from 'zod'

import {UsageError} from '../errors.js'
import type {WorkerRole} from '../serve/protocol.js'

export interface WorkerRecord {
  readonly engineId: string
  readonly role: WorkerRole
  /** Where the worker's control plane answers, as other hosts reach it (--advertise). */
  readonly controlUrl: string
  readonly tp: number
  /** The served model's name (what clients pass as `model`). */
  readonly model: string
  readonly compatibilityHash: string
  /** Changes when the worker restarts (its regions are new). */
  readonly engineEpoch: string
  readonly protocolVersion: number
  readonly maxModelLen: number
  readonly vocabSize: number
  /** Unix ms when the worker registered. */
  readonly registeredAtMs: number
}

/** Cluster names become key segments: keep them plain. */
export const CLUSTER_NAME = /^[A-Za-z0-9._-]{1,64}$/

export function checkClusterName(name: string): string {
  if (!CLUSTER_NAME.test(name)) {
    throw new UsageError('HPD_ETCD_BAD_FLAG', `--cluster must be 1..64 characters from A-Z a-z 0-9 . _ -, got ${JSON.stringify(name.slice(0, 70))}`, {hint: 'Pass --cluster with a plain name, e.g. --cluster prod-a.', details: {flag: 'cluster'}})
  }
  return name
}

export function workersPrefix(cluster: string): string {
  return `/hpd/${cluster}/workers/`
}

export function workerKey(cluster: string, role: WorkerRole, engineId: string): string {
  return `${workersPrefix(cluster)}${role}/${engineId}`
}

const recordSchema = z
  .object({
    engineId: z.string().regex(/^[A-Za-z0-9._:-]{1,256}$/),
    role: z.enum(['prefill', 'decode', 'colocated']),
    controlUrl: z.string().regex(/^http:\/\/[^/?#@\s]{1,255}$/),
    tp: z.number().int().min(1).max(1024),
    model: z.string().max(256),
    compatibilityHash: z.string().max(128),
    engineEpoch: z.string().max(128),
    protocolVersion: z.number().int(),
    maxModelLen: z.number().int().min(2),
    vocabSize: z.number().int().min(1),
    registeredAtMs: z.number(),
  })
  .strict()

/** A record read back from etcd, or undefined when it is not one (a stranger's key is ignored, not trusted). */
export function parseRecord(text: string): WorkerRecord | undefined {
  try {
    const r = recordSchema.safeParse(JSON.parse(text))
    return r.success ? r.data : undefined
  } catch {
    return undefined
  }
}
