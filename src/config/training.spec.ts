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
