import {mkdtempSync, rmSync, symlinkSync, writeFileSync, mkdirSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {RootFs} from './root-fs.js'

describe('RootFs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hpd-rootfs-'))
  afterAll(() => rmSync(dir, {recursive: true, force: true}))

  it('reads machine paths under the root, and absence is undefined or []', async () => {
    mkdirSync(join(dir, 'sys/devices/pci0000:00/0000:00:01.0'), {recursive: true})
    writeFileSync(join(dir, 'sys/devices/pci0000:00/0000:00:01.0/vendor'), '0x10de\n')
    mkdirSync(join(dir, 'sys/bus/pci/devices'), {recursive: true})
    symlinkSync('../../../devices/pci0000:00/0000:00:01.0', join(dir, 'sys/bus/pci/devices/0000:00:01.0'))
    const fs = new RootFs(dir)
    expect(fs.isLive).toBe(false)
    expect(await fs.readLine('/sys/bus/pci/devices/0000:00:01.0/vendor')).toBe('0x10de')
    expect(await fs.realMachinePath('/sys/bus/pci/devices/0000:00:01.0')).toBe('/sys/devices/pci0000:00/0000:00:01.0')
    expect(await fs.readText('/proc/self/limits')).toBeUndefined()
    expect(await fs.list('/sys/class/infiniband')).toEqual([])
    expect(await fs.filesystemSizeBytes('/dev/shm')).toBeUndefined()
  })

  it('does not follow a link out of the root', async () => {
    symlinkSync('/etc', join(dir, 'escape'))
    expect(await new RootFs(dir).realMachinePath('/escape')).toBeUndefined()
  })

  it('answers thousands of concurrent reads without running out of descriptors', async () => {
    mkdirSync(join(dir, 'many'))
    for (let i = 0; i < 3000; i++) writeFileSync(join(dir, 'many', String(i)), `${i}\n`)
    const fs = new RootFs(dir)
    const lines = await Promise.all(Array.from({length: 3000}, async (_, i) => fs.readLine(`/many/${i}`)))
    expect(lines.every((l, i) => l === String(i))).toBe(true)
  })
})
