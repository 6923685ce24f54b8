import { describe, expect, it } from 'vitest';
import { parseTrainingConfig } from '../config/training.ts';
import { FLAG_DEFAULTS, SGD_MOMENTUM_DEFAULT } from './training-flags.ts';

describe('the defaults --help shows', () => {
  it('are the configuration schema\'s own defaults', () => {
    expect(parseTrainingConfig({ model: { name: 'cnn' } })).toMatchObject(FLAG_DEFAULTS);
    expect(parseTrainingConfig({ model: { name: 'cnn' }, optimizer: { kind: 'sgd', lr: 0.05 } }).optimizer).toMatchObject({ momentum: SGD_MOMENTUM_DEFAULT });
  });
});
