import {readdir, readFile, realpath, stat, statfs} from 'node:fs/promises'
import {isAbsolute, join, relative, resolve, sep} from 'node:path'

/**
 * Every file the doctor reads goes through a RootFs, so `--root DIR` reads a captured tree of
 * another machine (or a test fixture) exactly as it would read `/`. Paths are given as they
 * appear on the probed machine ('/sys/class/infiniband'); a missing or unreadable file is
 * `undefined`, never an exception: sysfs files vanish, refuse reads (EINVAL, EACCES) or do not
 * exist on other kernels, and each probe decides what absence means.
 */
export class RootFs {
  /** Absolute path of the root on this machine ('/' when live). */
  readonly root: string
  /**
   * Probes fire thousands of reads at once on a big node (300 PCI functions, 8 NICs × 256 GIDs);
   * unbounded, they would open that many descriptors together and hit EMFILE under a 1024-file
   * limit, and a failed read would read as "absent". 64 in flight keeps libuv's pool busy.
   */
  private readonly gate = new Gate(64)

  constructor(root: string) {
    this.root = resolve(root)
  }

  get isLive(): boolean {
    return this.root === sep
  }

  /** Where a machine path lives on this machine. */
  hostPath(machinePath: string): string {
    return join(this.root, machinePath)
  }

  async readText(machinePath: string): Promise<string | undefined> {
    try {
      return await this.gate.run(async () => readFile(this.hostPath(machinePath), 'utf8'))
    } catch {
      return undefined
    }
  }

  /** First line, trimmed (sysfs attribute files). */
  async readLine(machinePath: string): Promise<string | undefined> {
    const text = await this.readText(machinePath)
    return text === undefined ? undefined : text.split('\n', 1)[0].trim()
  }

  /** Directory entries, sorted; [] when the directory does not exist. */
  async list(machinePath: string): Promise<string[]> {
    try {
      return (await this.gate.run(async () => readdir(this.hostPath(machinePath)))).sort()
    } catch {
      return []
    }
  }

  async exists(machinePath: string): Promise<boolean> {
    try {
      await this.gate.run(async () => stat(this.hostPath(machinePath)))
      return true
    } catch {
      return false
    }
  }

  /**
   * Resolves symlinks and returns the result as a machine path. sysfs links are relative
   * (`../../../devices/pci0000:00/...`), so a captured tarball resolves inside DIR. A path that
   * escapes the root is reported as undefined rather than read from this machine.
   */
  async realMachinePath(machinePath: string): Promise<string | undefined> {
    try {
      const real = await this.gate.run(async () => realpath(this.hostPath(machinePath)))
      const rel = relative(this.root, real)
      if (rel.startsWith('..') || isAbsolute(rel)) return undefined
      return `/${rel.split(sep).join('/')}`
    } catch {
      return undefined
    }
  }

  /** Size of the filesystem holding a machine path, in bytes; live machines only (statfs of DIR says nothing about the captured machine). */
  async filesystemSizeBytes(machinePath: string): Promise<number | undefined> {
    if (!this.isLive) return undefined
    try {
      const s = await statfs(this.hostPath(machinePath))
      return s.blocks * s.bsize
    } catch {
      return undefined
    }
  }
}

/** At most `limit` operations in flight; the rest wait in order. */
class Gate {
  private active = 0
  private readonly waiting: (() => void)[] = []

  constructor(private readonly limit: number) {}

  async run<T>(op: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve))
    this.active++
    try {
      return await op()
    } finally {
      this.active--
      this.waiting.shift()?.()
    }
  }
}
