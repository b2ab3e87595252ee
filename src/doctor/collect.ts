import {stat} from 'node:fs/promises'

import {UsageError} from '../errors.js'
import {RootFs} from './root-fs.js'
import {CapturedToolRunner, LiveToolRunner, ToolRunner} from './tools.js'
import {ContainerFacts, probeContainer} from './probes/container.js'
import {HostFacts, probeHost} from './probes/host.js'
import {KernelFacts, probeKernel} from './probes/kernel.js'
import {LimitsFacts, probeLimits} from './probes/limits.js'
import {MemoryFacts, probeMemory} from './probes/memory.js'
import {NativeFacts, probeNative} from './probes/native.js'
import {NvidiaSmiGpu, probeNvidiaSmi} from './probes/nvidia-smi.js'
import {PciDevice, scanPci} from './probes/pci.js'
import {RdmaDevice, scanRdma} from './probes/rdma.js'
import {Probed, UcxFacts, probeUcx} from './probes/ucx-info.js'

/** Everything the probes found; checks are pure functions of this. */
export interface MachineFacts {
  readonly root: string
  /** Reading a --root tree: host tools and the addon cannot describe it. */
  readonly captured: boolean
  readonly host: Probed<HostFacts>
  readonly pci: readonly PciDevice[]
  readonly rdma: readonly RdmaDevice[]
  readonly kernel: KernelFacts
  readonly limits: LimitsFacts
  readonly memory: MemoryFacts
  readonly container: ContainerFacts
  readonly ucx: UcxFacts
  readonly nvidiaSmi: Probed<readonly NvidiaSmiGpu[]>
  readonly native: NativeFacts
  /** UCX_* variables of this process (live only: a captured tree's environment is unknown). */
  readonly ucxEnv: Readonly<Record<string, string>>
}

export interface CollectOptions {
  /** '/' (default) or a captured tree. */
  readonly root?: string
  /** Defaults: real tools when live, DIR/.hpd-doctor/ captures under --root. */
  readonly tools?: ToolRunner
  /** Environment of the live tools and of the reported UCX_* settings; process.env by default. */
  readonly env?: NodeJS.ProcessEnv
}

/** Runs every probe concurrently; none of them throws (absence is a fact, not an error). */
export async function collectFacts(options: CollectOptions = {}): Promise<MachineFacts> {
  const fs = new RootFs(options.root ?? '/')
  await assertDirectory(fs.root, options.root)
  const env = options.env ?? process.env
  const tools = options.tools ?? (fs.isLive ? new LiveToolRunner(env) : new CapturedToolRunner(fs))
  // Tools first: their processes run while the sysfs reads and imports proceed.
  const ucx = probeUcx(tools)
  const nvidiaSmi = probeNvidiaSmi(tools)
  const [host, pci, rdma, kernel, limits, memory, container, native] = await Promise.all([
    probeHostSafely(fs),
    scanPci(fs),
    scanRdma(fs),
    probeKernel(fs),
    probeLimits(fs),
    probeMemory(fs),
    probeContainer(fs),
    probeNative(fs),
  ])
  return {
    root: fs.root,
    captured: !fs.isLive,
    host,
    pci,
    rdma,
    kernel,
    limits,
    memory,
    container,
    ucx: await ucx,
    nvidiaSmi: await nvidiaSmi,
    native,
    ucxEnv: fs.isLive ? Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[0].startsWith('UCX_') && e[1] !== undefined)) : {},
  }
}

async function probeHostSafely(fs: RootFs): Promise<Probed<HostFacts>> {
  try {
    const value = await probeHost(fs)
    return {ok: true, value, source: value.source}
  } catch (error) {
    return {ok: false, reason: `host facts unavailable: ${(error as Error).message}`}
  }
}

async function assertDirectory(path: string, given: string | undefined): Promise<void> {
  const isDir = await stat(path).then((s) => s.isDirectory(), () => false)
  if (!isDir) {
    throw new UsageError('HPD_DOCTOR_ROOT_NOT_FOUND', `--root ${given ?? path}: no such directory (${path})`, {
      hint: 'Point --root at an unpacked capture of the other machine: a directory holding its sys/, proc/ and dev/.',
    })
  }
}
