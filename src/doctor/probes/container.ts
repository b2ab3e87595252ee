import {RootFs} from '../root-fs.js'

/** Whether we run in a container, and which devices it was given. */
export interface ContainerFacts {
  /** 'docker' | 'podman' | 'kubernetes' | 'containerd' | 'lxc' | null (not a container, as far as the files tell). */
  readonly runtime: string | null
  /** The files that gave it away. */
  readonly evidence: readonly string[]
  /** Entries of /dev/infiniband (uverbs0, rdma_cm ...): what RDMA needs passed in. */
  readonly devInfiniband: readonly string[]
  /** /dev/nvidia* device nodes. */
  readonly devNvidia: readonly string[]
  /** False when /dev is empty or absent (a capture without /dev): device-node checks then cannot judge. */
  readonly devListed: boolean
}

export async function probeContainer(fs: RootFs): Promise<ContainerFacts> {
  const [dockerenv, containerenv, cgroup, devInfiniband, dev] = await Promise.all([
    fs.exists('/.dockerenv'),
    fs.exists('/run/.containerenv'),
    fs.readText('/proc/1/cgroup'),
    fs.list('/dev/infiniband'),
    fs.list('/dev'),
  ])
  const evidence: string[] = []
  let runtime: string | null = null
  const note = (kind: string, why: string): void => {
    runtime ??= kind
    evidence.push(why)
  }
  if (dockerenv) note('docker', '/.dockerenv exists')
  if (containerenv) note('podman', '/run/.containerenv exists')
  const cg = /\b(kubepods|docker|libpod|containerd|lxc)\b/u.exec(cgroup ?? '')
  if (cg) {
    const kind = {kubepods: 'kubernetes', docker: 'docker', libpod: 'podman', containerd: 'containerd', lxc: 'lxc'}[cg[1]] ?? cg[1]
    note(kind, `/proc/1/cgroup names ${cg[1]}`)
  }
  return {runtime, evidence, devInfiniband, devNvidia: dev.filter((d) => d.startsWith('nvidia')), devListed: dev.length > 0}
}
