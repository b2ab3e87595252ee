import {HpdError} from '../errors.js'

/** The HpdError `fn` throws; fails the test when it throws nothing or something else. */
export function thrown(fn: () => unknown): HpdError {
  try {
    fn()
  } catch (error) {
    if (error instanceof HpdError) return error
    throw error
  }
  throw new Error('expected an HpdError')
}
