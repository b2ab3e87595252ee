import {existsSync, statSync} from 'node:fs'
import {dirname} from 'node:path'

import {ModelConfigError} from '../errors.js'
import {findPreset, loadModelSpec, type ModelSpec} from '../model/index.js'
import {dimsFromSpec, type ModelDims} from './model-dims.js'
import {ensureTinyModel} from './tiny-models.js'
import {loadTokenizer, type TextTokenizer} from './tokenizer.js'
import {loadWeights, type Weights} from './weights.js'

export interface LoadedModel {
  /** The directory the weights were read from. */
  readonly dir: string
  readonly spec: ModelSpec
  readonly dims: ModelDims
  readonly weights: Weights
  readonly tokenizer: TextTokenizer
}

/**
 * `--model` → everything the engine needs: a tiny preset (generated into the cache dir on first
 * use) or a Hugging Face model directory (config.json + safetensors + tokenizer). The config is
 * parsed by src/model; weights are checked tensor by tensor against it.
 */
export function loadModel(model: string): LoadedModel {
  const tinyDir = ensureTinyModel(model)
  let dir: string
  if (tinyDir) dir = tinyDir
  else if (findPreset(model)) {
    throw new ModelConfigError('HPD_ENGINE_PRESET_WITHOUT_WEIGHTS', `preset ${model} describes a layout only; hpd has no weights for it`, {
      hint: 'Use --model tiny (or tiny-hybrid-g1, tiny-llama), or a local Hugging Face model directory.',
    })
  } else dir = existsSync(model) && statSync(model).isFile() ? dirname(model) : model
  const loaded = loadModelSpec(dir)
  const spec = tinyDir ? {...loaded, name: findPreset(model)!.name} : loaded
  const dims = dimsFromSpec(spec)
  return {dir, spec, dims, weights: loadWeights(dir, dims), tokenizer: loadTokenizer(dir)}
}
