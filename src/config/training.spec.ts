import { describe, expect, it } from 'vitest';
import { fitRounds, parseTrainingConfig, totalRounds, roundsPerEpoch } from './training.ts';

describe('an explicit round count runs that many rounds', () => {
  it.each<[number, number, number | undefined, number, number, number]>([
    // rounds, epochs, batches per round given, shard batches -> batches per round, epochs
    [20, 1, undefined, 453, 22, 1],
    [20, 1, undefined, 17, 1, 2],
    [5, 3, undefined, 10, 6, 3],
    [1, 1, undefined, 10, 10, 1],
  ])('%i rounds, %i epoch(s), batches per round %s, %i in the shard', (rounds, epochs, given, batches, per, wantEpochs) => {
    const c = parseTrainingConfig({ model: { name: 'cnn' }, maxRounds: rounds, epochs, ...(given ? { batchesPerRound: given } : {}) });
    const { config, note } = fitRounds(c, batches);
    expect([config.batchesPerRound, config.epochs]).toEqual([per, wantEpochs]);
    expect(totalRounds(config, roundsPerEpoch(config, batches))).toBe(rounds);
    expect(note).toMatch(new RegExp(`^${rounds} rounds: ${per} of the ${batches} batches`));
  });

  it('leaves the config alone when --batches-per-round is given or no round count is', () => {
    const given = parseTrainingConfig({ model: { name: 'cnn' }, maxRounds: 20, batchesPerRound: 2 });
    expect(fitRounds(given, 100)).toEqual({ config: given, note: null });
    const none = parseTrainingConfig({ model: { name: 'cnn' } });
    expect(fitRounds(none, 100)).toEqual({ config: none, note: null });
  });
});

describe('a strict configuration', () => {
  it('refuses unknown keys at any depth, suggesting the key a typo meant', () => {
    expect(() => parseTrainingConfig({ model: { name: 'cnn' }, batchsize: 32 })).toThrow('invalid training configuration: unknown key "batchsize" (did you mean "batchSize"?)');
    expect(() => parseTrainingConfig({ model: { name: 'cnn', widht: 2 } })).toThrow('model: unknown key "widht" (did you mean "width"?)');
    expect(() => parseTrainingConfig({ model: { name: 'cnn' }, optimizer: { kind: 'sgd', lr: 0.1, momentun: 0.5 } })).toThrow('optimizer: unknown key "momentun" (did you mean "momentum"?)');
    expect(() => parseTrainingConfig({ model: { name: 'cnn' }, zzzzzzzz: 1 })).toThrow(/unknown key "zzzzzzzz"$/);
  });

  it('names the field of a wrong type or an out-of-range value', () => {
    expect(() => parseTrainingConfig({ model: { name: 'cnn' }, batchSize: 'big' })).toThrow(/^invalid training configuration: batchSize: /);
    expect(() => parseTrainingConfig({ model: { name: 'cnn' }, optimizer: { kind: 'sgd', lr: 0.1, momentum: 2 } })).toThrow(/optimizer\.momentum: /);
  });
});
