import type {EngineLayout} from '../../layout/types.js'
import type {KernelsBinding} from '../../native/kernels-binding.js'
import type {MambaPageGeometry, PagedKvGeometry, RankCache} from '../cache.js'
import type {ModelDims} from '../model-dims.js'
import type {OpRankWeights, Projection, RankWeights} from '../rank-weights.js'

/**
 * What every op of the runner works with: the kernels, the model, every rank's weights, cache
 * and scratch, and where each layer's cache lives. Ops run rank by rank on the rank's own
 * weights, scratch and cache (the in-process TP); their partial outputs are summed by the
 * runner's all-reduce.
 */
export interface SliceWork {
  /** Token ids of the slice, at positions pos0 .. pos0 + tokens.length − 1. */
  readonly tokens: Int32Array
  readonly pos0: number
  /** Kernel block table of the slice, per attention KV-cache group index. */
  readonly attentionTables: ReadonlyMap<number, Int32Array>
  /** Logical page of the slice, per state (Mamba / GDN) KV-cache group index. */
  readonly statePages: ReadonlyMap<number, number>
  /** Return the logits of the slice's last token. */
  readonly wantLogits: boolean
}

/** Where one layer's cache lives: KV-cache group and shared tensor. */
export interface Placement {
  readonly group: number
  readonly tensorIndex: number
}

/** Growable named fp32 / int32 buffers (one set per rank, one shared). */
export class Scratch {
  private readonly buffers = new Map<string, Float32Array>()
  private readonly ints = new Map<string, Int32Array>()

  get(name: string, size: number): Float32Array {
    let b = this.buffers.get(name)
    if (!b || b.length < size) {
      b = new Float32Array(Math.max(size, Math.ceil((b?.length ?? 0) * 1.5)))
      this.buffers.set(name, b)
    }
    return b.subarray(0, size)
  }

  int(name: string, size: number): Int32Array {
    let b = this.ints.get(name)
    if (!b || b.length < size) {
      b = new Int32Array(Math.max(size, Math.ceil((b?.length ?? 0) * 1.5)))
      this.ints.set(name, b)
    }
    return b.subarray(0, size)
  }
}

/** The batch one forward pass computes: slices stacked into R rows. */
export interface Batch {
  readonly slices: readonly SliceWork[]
  /** First row of each slice. */
  readonly starts: readonly number[]
  readonly rows: number
}

/** Which op of which block of which layer. */
export interface OpRef {
  readonly layer: number
  readonly block: number
  readonly op: number
}

export interface RunnerContext {
  readonly k: KernelsBinding
  readonly dims: ModelDims
  readonly ranks: readonly RankWeights[]
  readonly layout: EngineLayout
  readonly caches: readonly RankCache[]
  readonly shared: Scratch
  readonly scratch: readonly Scratch[]
  /** [layer] → attention / state placement (a parallel hybrid layer has both). */
  readonly attentionPlacement: readonly (Placement | undefined)[]
  readonly statePlacement: readonly (Placement | undefined)[]
  readonly kvGeometry: readonly PagedKvGeometry[] | undefined
  readonly stateGeometry: readonly MambaPageGeometry[] | undefined
}

export function opWeights<T extends OpRankWeights>(ctx: RunnerContext, ref: OpRef, rank: number): T {
  return ctx.ranks[rank].layers[ref.layer][ref.block].ops[ref.op] as T
}

/** Views of one slice's state page in a rank's cache tensor: conv [channels, K−1] (DS) and SSM. */
export function statePage(ctx: RunnerContext, layer: number, rank: number, slice: SliceWork): {conv: Float32Array; ssm: Float32Array} {
  const place = ctx.statePlacement[layer]!
  const g = ctx.stateGeometry![rank]
  const tensor = ctx.caches[rank].tensors[place.tensorIndex]
  const base = slice.statePages.get(place.group)! * g.pageStride
  return {
    conv: tensor.subarray(base + g.convOffset, base + g.convOffset + g.convElems),
    ssm: tensor.subarray(base + g.ssmOffset, base + g.ssmOffset + g.ssmElems),
  }
}

/**
 * An op: `prepare` runs what needs every rank before the projections (a statistic summed over
 * ranks, the router's choice); `project` writes (or, with accumulate, adds) this rank's partial
 * output [R, D] of the op, times the op's output scale.
 */
export interface Op {
  prepare?(ctx: RunnerContext, ref: OpRef, batch: Batch, u: Float32Array): void
  project(ctx: RunnerContext, ref: OpRef, batch: Batch, u: Float32Array, rank: number, partial: Float32Array, accumulate: boolean): void
}

/**
 * out[R, proj.width] = x[R, D] · proj: one GEMM per part into consecutive columns, straight into
 * `out` when the parts are in the op's order, else into the rank's raw scratch and rearranged.
 */
export function project(ctx: RunnerContext, rank: number, x: Float32Array, proj: Projection, out: Float32Array, R: number): void {
  const {k} = ctx
  const D = ctx.dims.hiddenSize
  const W = proj.width
  const target = proj.order ? ctx.scratch[rank].get('projRaw', R * W) : out
  let column = 0
  for (const part of proj.parts) {
    const n = part.length / D
    k.linear(x, D, part, target.subarray(column), W, R, D, n, false)
    column += n
  }
  if (proj.order) k.copyColumns(target, W, out, W, R, proj.order)
}
