import {fileURLToPath} from 'node:url'

import {execa} from 'execa'
import {afterAll, describe, expect, it} from 'vitest'

import {NativeError, UsageError, VerificationError} from '../errors.js'
import {type ChildHandle, errorFromJson, errorToJson, spawnChild} from './index.js'

/** The child-process kit between real processes: the children are test/fixtures/child/*.ts (run under tsx, as the kit runs .ts entries). */
const fixture = (name: string): string => fileURLToPath(new URL(`../../test/fixtures/child/${name}.ts`, import.meta.url))
const children: ChildHandle[] = []
afterAll(async () => {
  await Promise.all(children.map((c) => c.stop(1000)))
})
function spawn<R>(entry: string, o: {ipc?: boolean; args?: string[]; startTimeoutMs?: number} = {}): ChildHandle<R> {
  const c = spawnChild<R>({name: 'the test child', entry, startTimeoutMs: o.startTimeoutMs ?? 20_000, ...(o.ipc ? {ipc: true} : {}), ...(o.args ? {args: o.args} : {})})
  children.push(c as ChildHandle)
  return c
}
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('HpdError as JSON', () => {
  it('keeps class, exit code, code, hint and details across the boundary', () => {
    const back = errorFromJson(errorToJson(new VerificationError('HPD_X', 'bytes differ', {hint: 'look', details: {rank: 1}})), {side: 'decode'})
    expect(back).toBeInstanceOf(VerificationError)
    expect(back).toMatchObject({code: 'HPD_X', message: 'bytes differ', hint: 'look', exitCode: 6, details: {rank: 1, side: 'decode'}})
    expect(errorFromJson(errorToJson(Object.assign(new Error('peer gone'), {code: 'HPD_NATIVE_PEER_UNREACHABLE'})))).toBeInstanceOf(NativeError)
    expect(errorFromJson({kind: 'Weird', code: 'HPD_NATIVE_TIMEOUT', message: 'm'})).toBeInstanceOf(NativeError)
  })
})

describe('the child-process kit', () => {
  it('hands over the ready payload, and messages and errors both ways over IPC', async () => {
    const c = spawn<{pid: number; arg: string}>(fixture('echo'), {ipc: true, args: ['hello']})
    const ready = await c.ready
    expect(ready).toEqual({pid: c.pid, arg: 'hello'})
    const answer = new Promise<{echo: number; back: ReturnType<typeof errorToJson>}>((resolve) => c.onMessage((m) => resolve(m as never)))
    c.send({n: 41, error: errorToJson(new UsageError('HPD_PARENT_SAYS', 'stop'))})
    const m = await answer
    expect(m.echo).toBe(42)
    const e = errorFromJson(m.back)
    expect(e).toBeInstanceOf(VerificationError)
    expect(e.message).toBe('HPD_PARENT_SAYS true')
  })

  it('passes a failed start on as the child\'s own typed error, with its exit code', async () => {
    const c = spawn(fixture('refuse'))
    await expect(c.ready).rejects.toMatchObject({code: 'HPD_TEST_REFUSED', message: 'no model here', hint: 'pass one', exitCode: 2})
    expect((await c.exited).code).toBe(2)
  })

  it('says how a child that died before ready went, with its last output', async () => {
    const c = spawn(fixture('crash'))
    await expect(c.ready).rejects.toMatchObject({code: 'HPD_CHILD_START', details: {signal: 'SIGKILL'}})
    await expect(c.ready).rejects.toThrow(/the test child exited with SIGKILL before it was ready; its last output:\nabout to go/)
  })

  it('bounds the wait for ready', async () => {
    const c = spawn(fixture('never-ready'), {startTimeoutMs: 3000})
    await expect(c.ready).rejects.toMatchObject({code: 'HPD_CHILD_START'})
    await expect(c.ready).rejects.toThrow(/did not report ready within 3000 ms/)
  })

  it('lifeline: a child exits when its parent is killed outright', async () => {
    const p = execa(process.execPath, ['--import', 'tsx', fixture('parent')], {reject: false, buffer: false, stdout: 'pipe'})
    const pid = await new Promise<number>((resolve) => p.stdout!.once('data', (d: Buffer) => resolve((JSON.parse(d.toString()) as {pid: number}).pid)))
    expect(alive(pid)).toBe(true)
    p.kill('SIGKILL')
    const deadline = Date.now() + 10_000
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect(alive(pid)).toBe(false)
  })
})
