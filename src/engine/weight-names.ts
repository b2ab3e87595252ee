import type {ModelDims} from './model-dims.js'

/**
 * The checkpoint tensor names and shapes a model must provide, by family (model-forward.md §2–§5,
 * torch [out, in] layout). The loader checks every one against the files; the tiny-model
 * generator writes exactly these.
 */
export interface ExpectedTensor {
  readonly name: string
  readonly shape: readonly number[]
}

export function expectedTensors(d: ModelDims): ExpectedTensor[] {
  return d.family === 'llama' ? llamaTensors(d) : nemotronTensors(d)
}

function nemotronTensors(d: ModelDims): ExpectedTensor[] {
  const D = d.hiddenSize
  const out: ExpectedTensor[] = [{name: 'backbone.embeddings.weight', shape: [d.vocabSize, D]}]
  d.layers.forEach((kind, i) => {
    const p = `backbone.layers.${i}.`
    out.push({name: `${p}norm.weight`, shape: [D]})
    if (kind === 'mamba') {
      const m = d.mamba!
      const gn = m.nGroups * m.stateSize
      const cd = m.inner + 2 * gn
      out.push(
        {name: `${p}mixer.in_proj.weight`, shape: [2 * m.inner + 2 * gn + m.numHeads, D]},
        {name: `${p}mixer.conv1d.weight`, shape: [cd, 1, m.convKernel]},
        ...(m.useConvBias ? [{name: `${p}mixer.conv1d.bias`, shape: [cd]}] : []),
        {name: `${p}mixer.dt_bias`, shape: [m.numHeads]},
        {name: `${p}mixer.A_log`, shape: [m.numHeads]},
        {name: `${p}mixer.D`, shape: [m.numHeads]},
        {name: `${p}mixer.norm.weight`, shape: [m.inner]},
        {name: `${p}mixer.out_proj.weight`, shape: [D, m.inner]},
      )
    } else if (kind === 'attention') {
      const a = d.attention!
      out.push(
        {name: `${p}mixer.q_proj.weight`, shape: [a.numHeads * a.headDim, D]},
        {name: `${p}mixer.k_proj.weight`, shape: [a.numKvHeads * a.headDim, D]},
        {name: `${p}mixer.v_proj.weight`, shape: [a.numKvHeads * a.headDim, D]},
        {name: `${p}mixer.o_proj.weight`, shape: [D, a.numHeads * a.headDim]},
      )
    } else {
      out.push({name: `${p}mixer.up_proj.weight`, shape: [d.intermediateSize, D]}, {name: `${p}mixer.down_proj.weight`, shape: [D, d.intermediateSize]})
    }
  })
  out.push({name: 'backbone.norm_f.weight', shape: [D]}, {name: 'lm_head.weight', shape: [d.vocabSize, D]})
  return out
}

function llamaTensors(d: ModelDims): ExpectedTensor[] {
  const D = d.hiddenSize
  const a = d.attention!
  const out: ExpectedTensor[] = [{name: 'model.embed_tokens.weight', shape: [d.vocabSize, D]}]
  d.layers.forEach((_kind, i) => {
    const p = `model.layers.${i}.`
    out.push(
      {name: `${p}input_layernorm.weight`, shape: [D]},
      {name: `${p}self_attn.q_proj.weight`, shape: [a.numHeads * a.headDim, D]},
      {name: `${p}self_attn.k_proj.weight`, shape: [a.numKvHeads * a.headDim, D]},
      {name: `${p}self_attn.v_proj.weight`, shape: [a.numKvHeads * a.headDim, D]},
      {name: `${p}self_attn.o_proj.weight`, shape: [D, a.numHeads * a.headDim]},
      {name: `${p}post_attention_layernorm.weight`, shape: [D]},
      {name: `${p}mlp.gate_proj.weight`, shape: [d.intermediateSize, D]},
      {name: `${p}mlp.up_proj.weight`, shape: [d.intermediateSize, D]},
      {name: `${p}mlp.down_proj.weight`, shape: [D, d.intermediateSize]},
    )
  })
  out.push({name: 'model.norm.weight', shape: [D]})
  if (!d.tieWordEmbeddings) out.push({name: 'lm_head.weight', shape: [d.vocabSize, D]})
  return out
}
