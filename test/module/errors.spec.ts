/**
 * Bad input: every refused command answers one error line, changes nothing in the database
 * (a snapshot of every key's type, TTL and DUMP is compared before and after), and the
 * server keeps answering. Then random garbage at every command.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cluster/redis-server.ts';
import { fuzzModule } from './fuzz.ts';
import { bytes, cmd, errorOf, f32, randomTensor, snapshot, start, stopAll, type Arg, type Client } from './helpers.ts';

let server: RedisServer;
let client: Client;

const T16 = bytes(randomTensor(16, 1));
const T8 = bytes(randomTensor(8, 2));
const withValue = (x: number) => {
  const t = randomTensor(16, 3);
  t[9] = x;
  return bytes(t);
};
const NAN16 = withValue(NaN), INF16 = withValue(Infinity), NINF16 = withValue(-Infinity), BIG16 = withValue(2 ** 20);

/** A fixed database the bad commands must leave alone. */
async function populate(): Promise<void> {
  await client.flushAll();
  await cmd(client, 'PL.SET', 't', T16);
  await cmd(client, 'PL.SET', 'g', T16);
  await cmd(client, 'PL.SET', 'g8', T8);
  await cmd(client, 'PL.SET', 'v8', T8);
  await cmd(client, 'SET', 'nan', NAN16); // written behind the module's back
  await cmd(client, 'SET', 'odd', Buffer.from('1234567'));
  await cmd(client, 'SET', 'empty', '');
  await client.hSet('h', 'f', 'v');
  await client.rPush('l', 'x');
  await cmd(client, 'PL.ACCUM', 'run', 'runavg', 'id1', '3', T16); // running: 1 of 3
  await cmd(client, 'PL.ACCUM', 'fin', 'finavg', 'id1', '1', T16); // complete
  await cmd(client, 'SET', 'badids:ids', 'not a hash');
  await client.hSet('noexp:ids', 'x', '1'); // an id set without the expected count
  await cmd(client, 'SET', 'notexact', Buffer.alloc(24)); // a running sum of the wrong size
  await cmd(client, 'PL.SET', 'big', BIG16); // finite, but beyond what an exact mean holds
  await client.hSet('notexact:ids', { '': '3', a: '1' });
  await cmd(client, 'SET', 'step', 'abc');
  await cmd(client, 'SET', 'negstep', '-3');
  await cmd(client, 'SET', 'withttl', T16);
  await client.pExpire('withttl', 1_000_000);
}

beforeAll(async () => {
  ({ server, client } = await start());
});
afterAll(async () => {
  await stopAll(client, server);
});

const ARITY = /^ERR wrong number of arguments/;
const PL = /^ERR peerless: \S/;

/** [label, args, expected error]; `PL` unless the arity check answers. */
const cases: [string, Arg[], RegExp][] = [
  // PL.SET
  ['SET arity', ['PL.SET', 't'], ARITY],
  ['SET arity 2', ['PL.SET', 't', T16, 'x'], ARITY],
  ['SET empty blob', ['PL.SET', 't', Buffer.alloc(0)], /not a non-empty multiple of 4/],
  ['SET 3 bytes', ['PL.SET', 't', Buffer.alloc(3)], /3 bytes/],
  ['SET 65 bytes', ['PL.SET', 'new', Buffer.alloc(65)], /65 bytes/],
  ['SET NaN', ['PL.SET', 't', NAN16], /non-finite value \(NaN\) at element 9/],
  ['SET Inf', ['PL.SET', 'new', INF16], /non-finite value \(Inf\) at element 9/],
  ['SET -Inf', ['PL.SET', 'new', NINF16], /-Inf/],
  ['SET into a hash', ['PL.SET', 'h', T16], /wrong type.*hash/],
  ['SET into a list', ['PL.SET', 'l', T16], /wrong type.*list/],
  // PL.SETRANGE
  ['SETRANGE arity', ['PL.SETRANGE', 't', '0'], ARITY],
  ['SETRANGE missing', ['PL.SETRANGE', 'nope', '0', T8], /"nope" does not exist/],
  ['SETRANGE negative', ['PL.SETRANGE', 't', '-1', T8], /offset must be between/],
  ['SETRANGE not a number', ['PL.SETRANGE', 't', '1x', T8], /offset must be an integer/],
  ['SETRANGE 2^64', ['PL.SETRANGE', 't', '18446744073709551616', T8], /offset must be an integer/],
  ['SETRANGE beyond', ['PL.SETRANGE', 't', '9', T8], /does not fit/],
  ['SETRANGE odd blob', ['PL.SETRANGE', 't', '0', Buffer.alloc(6)], /6 bytes/],
  ['SETRANGE NaN', ['PL.SETRANGE', 't', '0', NAN16], /non-finite/],
  ['SETRANGE hash', ['PL.SETRANGE', 'h', '0', T8], /wrong type/],
  ['SETRANGE odd string', ['PL.SETRANGE', 'odd', '0', T8], /7 bytes, not a float32 tensor/],
  ['SETRANGE empty string', ['PL.SETRANGE', 'empty', '0', T8], /does not exist|0 bytes/],
  // PL.SEND: refused before any thread starts (what the destination says: send.spec.ts)
  ['SEND arity', ['PL.SEND', 't', '0', '16', '127.0.0.1', '1', 'd'], ARITY],
  ['SEND missing source', ['PL.SEND', 'nope', '0', '1', '127.0.0.1', '1', 'd', '0'], /source "nope" does not exist/],
  ['SEND hash source', ['PL.SEND', 'h', '0', '1', '127.0.0.1', '1', 'd', '0'], /wrong type: source "h"/],
  ['SEND range', ['PL.SEND', 't', '10', '7', '127.0.0.1', '1', 'd', '0'], /range \[10, 17\) is outside tensor "t" of 16 elements/],
  ['SEND count 0', ['PL.SEND', 't', '0', '0', '127.0.0.1', '1', 'd', '0'], /count must be between 1 and/],
  ['SEND host name', ['PL.SEND', 't', '0', '16', 'localhost', '1', 'd', '0'], /host must be an IPv4 or IPv6 address \(resolve names first\), got "localhost"/],
  ['SEND host with NUL', ['PL.SEND', 't', '0', '16', Buffer.from('127.0.0.1\0x'), '1', 'd', '0'], /host must be an IPv4 or IPv6 address/],
  ['SEND port 0', ['PL.SEND', 't', '0', '16', '127.0.0.1', '0', 'd', '0'], /port must be between 1 and 65535/],
  ['SEND port 65536', ['PL.SEND', 't', '0', '16', '::1', '65536', 'd', '0'], /port must be between 1 and 65535/],
  ['SEND destination offset', ['PL.SEND', 't', '0', '16', '127.0.0.1', '1', 'd', '-1'], /destination offset must be between/],
  ['SEND chunk 0', ['PL.SEND', 't', '0', '16', '127.0.0.1', '1', 'd', '0', 'CHUNK', '0'], /chunk must be between 1 and/],
  ['SEND timeout', ['PL.SEND', 't', '0', '16', '127.0.0.1', '1', 'd', '0', 'TIMEOUT', 'soon'], /timeout must be an integer/],
  ['SEND unknown option', ['PL.SEND', 't', '0', '16', '127.0.0.1', '1', 'd', '0', 'FAST'], /unexpected argument "FAST" \(options: AUTH user password, CHUNK n, TIMEOUT ms\)/],
  ['SEND AUTH without password', ['PL.SEND', 't', '0', '16', '127.0.0.1', '1', 'd', '0', 'AUTH', 'u'], /unexpected argument "AUTH"/],
  // PL.ZEROS
  ['ZEROS arity', ['PL.ZEROS', 'z'], ARITY],
  ['ZEROS 0', ['PL.ZEROS', 'z', '0'], /n must be between 1 and/],
  ['ZEROS -5', ['PL.ZEROS', 'z', '-5'], /n must be between/],
  ['ZEROS 2^27+1', ['PL.ZEROS', 'z', String(2 ** 27 + 1)], /n must be between/],
  ['ZEROS 1.5', ['PL.ZEROS', 'z', '1.5'], /integer/],
  ['ZEROS hash', ['PL.ZEROS', 'h', '4'], /wrong type/],
  // PL.LEN / PL.GETRANGE / PL.CHECKSUM
  ['LEN arity', ['PL.LEN'], ARITY],
  ['LEN missing', ['PL.LEN', 'nope'], /does not exist/],
  ['LEN hash', ['PL.LEN', 'h'], /wrong type.*hash/],
  ['LEN odd', ['PL.LEN', 'odd'], /7 bytes/],
  ['GETRANGE arity', ['PL.GETRANGE', 't', '0'], ARITY],
  ['GETRANGE missing', ['PL.GETRANGE', 'nope', '0', '1'], /does not exist/],
  ['GETRANGE negative', ['PL.GETRANGE', 't', '-1', '1'], /offset/],
  ['GETRANGE count', ['PL.GETRANGE', 't', '0', '17'], /outside/],
  ['GETRANGE end', ['PL.GETRANGE', 't', '16', '1'], /outside/],
  ['GETRANGE huge', ['PL.GETRANGE', 't', '9223372036854775807', '9223372036854775807'], /between/],
  ['CHECKSUM missing', ['PL.CHECKSUM', 'nope'], /does not exist/],
  ['CHECKSUM list', ['PL.CHECKSUM', 'l'], /wrong type/],
  // PL.SCALE
  ['SCALE arity', ['PL.SCALE', 't'], ARITY],
  ['SCALE nan', ['PL.SCALE', 't', 'nan'], /factor must be a finite number/],
  ['SCALE inf', ['PL.SCALE', 't', 'inf'], /finite/],
  ['SCALE beyond float', ['PL.SCALE', 't', '1e39'], /factor must be in/],
  ['SCALE text', ['PL.SCALE', 't', 'two'], /finite number/],
  ['SCALE missing', ['PL.SCALE', 'nope', '2'], /does not exist/],
  // PL.COPYRANGE
  ['COPYRANGE arity', ['PL.COPYRANGE', 't', '0', 'g', '0'], ARITY],
  ['COPYRANGE source range', ['PL.COPYRANGE', 't', '0', 'g', '10', '7'], /range \[10, 17\) does not fit source "g" of 16 elements/],
  ['COPYRANGE destination range', ['PL.COPYRANGE', 'g8', '4', 't', '0', '5'], /range \[4, 9\) does not fit destination "g8" of 8 elements/],
  ['COPYRANGE missing destination', ['PL.COPYRANGE', 'nope', '0', 't', '0', '1'], /destination "nope" does not exist/],
  ['COPYRANGE missing source', ['PL.COPYRANGE', 't', '0', 'nope', '0', '1'], /source "nope" does not exist/],
  ['COPYRANGE NaN source', ['PL.COPYRANGE', 't', '0', 'nan', '0', '16'], /source "nan" has a non-finite value at element 9/],
  ['COPYRANGE count text', ['PL.COPYRANGE', 't', '0', 'g', '0', 'x'], /count must be an integer/],
  ['COPYRANGE hash source', ['PL.COPYRANGE', 't', '0', 'h', '0', '1'], /wrong type: source "h"/],
  // PL.ACCUM
  ['ACCUM arity', ['PL.ACCUM', 's', 'a', 'id', '2'], ARITY],
  ['ACCUM arity 9', ['PL.ACCUM', 's', 'a', 'id', '2', T16, 'OFFSET', '0', 'TOTAL'], ARITY],
  ['ACCUM OFFSET alone', ['PL.ACCUM', 's', 'a', 'id', '2', T16, 'OFFSET', '0'], /OFFSET and TOTAL go together/],
  ['ACCUM expected 0', ['PL.ACCUM', 's', 'a', 'id', '0', T16], /expected must be between 1/],
  ['ACCUM expected text', ['PL.ACCUM', 's', 'a', 'id', 'x', T16], /expected must be an integer/],
  ['ACCUM empty id', ['PL.ACCUM', 's', 'a', '', '2', T16], /id must not be empty/],
  ['ACCUM NaN', ['PL.ACCUM', 'run', 'runavg', 'id2', '3', NAN16], /gradient has a non-finite value \(NaN\) at element 9/],
  ['ACCUM NaN fresh', ['PL.ACCUM', 'new', 'newavg', 'id', '3', INF16], /non-finite/],
  ['ACCUM odd blob', ['PL.ACCUM', 'run', 'runavg', 'id2', '3', Buffer.alloc(10)], /10 bytes/],
  ['ACCUM length', ['PL.ACCUM', 'run', 'runavg', 'id2', '3', T8], /gradient has 8 elements, expected 16/],
  ['ACCUM expected differs', ['PL.ACCUM', 'run', 'runavg', 'id2', '4', T16], /expected 4 contributions, but "run" was started with 3/],
  ['ACCUM complete', ['PL.ACCUM', 'fin', 'finavg', 'id2', '1', T16], /complete \(1 of 1\)/],
  ['ACCUM sum is avg', ['PL.ACCUM', 's', 's', 'id', '1', T16], /given twice/],
  ['ACCUM avg is the id set', ['PL.ACCUM', 's', 's:ids', 'id', '1', T16], /avg "s:ids" is one of the keys sum "s" keeps beside it/],
  // Each of these crashed the server when the accumulation rewrote the avg through another handle.
  ['ACCUM avg is the round marker', ['PL.ACCUM', 'run', 'run:round', 'id2', '3', T16], /avg "run:round" is one of the keys/],
  ['ACCUM avg is the block map', ['PL.ACCUM', 'run', 'run:blocks', 'id2', '3', T16], /avg "run:blocks" is one of the keys/],
  ['ACCUM avg is the replaced attempts', ['PL.ACCUM', 'run', 'run:gone', 'id2', '3', T16], /avg "run:gone" is one of the keys/],
  ['ACCUM avg is a staging slot', ['PL.ACCUM', 'run', 'run:slot:0', 'id2', '3', T16], /avg "run:slot:0" is one of the keys/],
  ['ACCUM avg is a slot record', ['PL.ACCUM', 'run', 'run:slot:12:got', 'id2', '3', T16], /avg "run:slot:12:got" is one of the keys/],
  ['ACCUM sum is the avg\'s round marker', ['PL.ACCUM', 'a:round', 'a', 'id', '1', T16], /sum "a:round" is the round marker of avg "a"/],
  ['PUSH avg is a slot record', ['PL.PUSH', 'run', 'run:slot:0:got', 'id', 'att', '3', '16', '8', '0', T8], /avg "run:slot:0:got" is one of the keys/],
  ['PUSH avg is the id set', ['PL.PUSH', 's', 's:ids', 'id', 'att', '1', '16', '16', '0', T16], /avg "s:ids" is one of the keys/],
  ['ACCUM id set not a hash', ['PL.ACCUM', 'badids', 'a', 'id', '1', T16], /wrong type.*not an id set/],
  ['ACCUM id set without expected', ['PL.ACCUM', 'noexp', 'a', 'id', '1', T16], /no expected count/],
  ['ACCUM sum is a hash', ['PL.ACCUM', 'h', 'a', 'id', '2', T16], /wrong type: sum "h"/],
  // A parameter tensor named as the sum by mistake: refused, not overwritten.
  ['ACCUM sum is a parameter tensor', ['PL.ACCUM', 't', 'a', 'id', '2', T16], /"t" holds a tensor that is not a running sum \(no "t:blocks" beside it\)/],
  ['PUSH sum is a parameter tensor', ['PL.PUSH', 't', 'a', 'id', 'att', '2', '16', '16', '0', T16], /"t" holds a tensor that is not a running sum/],
  ['ACCUM avg is a list', ['PL.ACCUM', 'new', 'l', 'id', '1', T16], /wrong type: avg "l"/],
  ['ACCUM slice beyond TOTAL', ['PL.ACCUM', 's', 'a', 'id', '2', T16, 'OFFSET', '10', 'TOTAL', '20'], /does not fit TOTAL 20/],
  ['ACCUM too large to sum exactly', ['PL.ACCUM', 'run', 'runavg', 'id2', '3', BIG16], /gradient has a value too large to sum exactly \(1\.04858e\+06 at element 9/],
  ['ACCUM TOTAL beyond an exact sum', ['PL.ACCUM', 's', 'a', 'id', '2', T16, 'OFFSET', '0', 'TOTAL', String(2 ** 25 + 1)], /more than an exact sum holds \(33554432\)/],
  ['ACCUM TOTAL differs', ['PL.ACCUM', 'run', 'runavg', 'id2', '3', T8, 'OFFSET', '0', 'TOTAL', '20'], /20 elements, expected 16/],
  ['ACCUM OFFSET twice', ['PL.ACCUM', 's', 'a', 'id', '2', T16, 'OFFSET', '0', 'OFFSET', '0'], /unexpected argument/],
  ['ACCUM OFFSET negative', ['PL.ACCUM', 's', 'a', 'id', '2', T16, 'OFFSET', '-1', 'TOTAL', '20'], /OFFSET must be between/],
  ['ACCUM TOTAL 0', ['PL.ACCUM', 's', 'a', 'id', '2', T16, 'OFFSET', '0', 'TOTAL', '0'], /TOTAL must be between 1/],
  ['ACCUM ROUND negative', ['PL.ACCUM', 's', 'a', 'id', '2', T16, 'ROUND', '-1'], /ROUND must be between 0/],
  ['ACCUM OFFSET without TOTAL', ['PL.ACCUM', 's', 'a', 'id', '2', T16, 'OFFSET', '0', 'ROUND', '1'], /OFFSET and TOTAL go together/],
  ['ACCUM ROUND twice', ['PL.ACCUM', 's', 'a', 'id', '2', T16, 'ROUND', '1', 'ROUND', '2'], /unexpected argument "ROUND"/],
  ['CLOSE bad keyword', ['PL.CLOSE', 'run', 'runavg', 'AT', '1'], /unexpected argument "AT"/],
  ['CLOSE ROUND text', ['PL.CLOSE', 'run', 'runavg', 'ROUND', 'x'], /ROUND must be an integer/],
  ['ACCUM bad keyword', ['PL.ACCUM', 's', 'a', 'id', '2', T16, 'FROM', '0', 'TOTAL', '20'], /unexpected argument "FROM"/],
  // PL.CLOSE
  ['CLOSE arity', ['PL.CLOSE', 'run'], ARITY],
  ['CLOSE arity 3', ['PL.CLOSE', 'run', 'runavg', 'x'], ARITY],
  ['CLOSE nothing arrived', ['PL.CLOSE', 'nosum', 'noavg'], /no contribution to "nosum" arrived/],
  ['CLOSE sum is avg', ['PL.CLOSE', 'run', 'run'], /given twice/],
  ['CLOSE avg is the id set', ['PL.CLOSE', 'run', 'run:ids'], /avg "run:ids" is one of the keys sum "run" keeps beside it/],
  ['CLOSE avg is a slot record', ['PL.CLOSE', 'run', 'run:slot:0:got'], /avg "run:slot:0:got" is one of the keys/],
  ['CLOSE sum is the avg\'s round marker', ['PL.CLOSE', 'runavg:round', 'runavg'], /sum "runavg:round" is the round marker of avg "runavg"/],
  ['CLOSE id set not a hash', ['PL.CLOSE', 'badids', 'a'], /wrong type.*not an id set/],
  ['CLOSE id set without expected', ['PL.CLOSE', 'noexp', 'a'], /no expected count/],
  ['CLOSE sum not an exact sum', ['PL.CLOSE', 'notexact', 'a'], /sum "notexact" holds 24 bytes, not an exact sum \(16 bytes an element\)/],
  ['CLOSE avg is a list', ['PL.CLOSE', 'run', 'l'], /wrong type: avg "l"/],
  // PL.SGD
  ['SGD arity', ['PL.SGD', 't', 'g', 'v', '0.1'], ARITY],
  ['SGD lr nan', ['PL.SGD', 't', 'g', 'v', 'nan', '0.9'], /lr must be a finite number/],
  ['SGD lr negative', ['PL.SGD', 't', 'g', 'v', '-0.1', '0.9'], /lr must be in/],
  ['SGD momentum inf', ['PL.SGD', 't', 'g', 'v', '0.1', 'inf'], /momentum/],
  // The configuration's ranges (src/config/training.ts): momentum <= 0.999, lr <= 10, WD <= 1.
  ['SGD momentum 2', ['PL.SGD', 't', 'g', 'v', '0.1', '2'], /momentum must be in \[0, 0\.999\], got 2/],
  ['SGD lr 11', ['PL.SGD', 't', 'g', 'v', '11', '0.9'], /lr must be in \[0, 10\]/],
  ['SGD WD 2', ['PL.SGD', 't', 'g', 'v', '0.1', '0.9', 'WD', '2'], /WD must be in \[0, 1\]/],
  ['SGD unknown option', ['PL.SGD', 't', 'g', 'v', '0.1', '0.9', 'FAST'], /unexpected argument "FAST"/],
  ['SGD WD without value', ['PL.SGD', 't', 'g', 'v', '0.1', '0.9', 'WD'], /unexpected argument "WD"/],
  ['SGD DAMPENING 2', ['PL.SGD', 't', 'g', 'v', '0.1', '0.9', 'DAMPENING', '2'], /DAMPENING must be in/],
  ['SGD nesterov dampening', ['PL.SGD', 't', 'g', 'v', '0.1', '0.9', 'NESTEROV', 'DAMPENING', '0.5'], /NESTEROV needs/],
  ['SGD nesterov no momentum', ['PL.SGD', 't', 'g', 'v', '0.1', '0', 'NESTEROV'], /NESTEROV needs/],
  ['SGD NESTEROV twice', ['PL.SGD', 't', 'g', 'v', '0.1', '0.9', 'NESTEROV', 'NESTEROV'], /unexpected/],
  ['SGD missing param', ['PL.SGD', 'nope', 'g', 'v', '0.1', '0.9'], /parameters "nope" does not exist/],
  ['SGD missing grad', ['PL.SGD', 't', 'nope', 'v', '0.1', '0.9'], /gradient "nope" does not exist/],
  ['SGD grad length', ['PL.SGD', 't', 'g8', 'v', '0.1', '0.9'], /gradient has 8 elements, expected 16/],
  ['SGD velocity length', ['PL.SGD', 't', 'g', 'v8', '0.1', '0.9'], /velocity has 8 elements, expected 16/],
  ['SGD velocity hash', ['PL.SGD', 't', 'g', 'h', '0.1', '0.9'], /wrong type: velocity/],
  ['SGD NaN gradient', ['PL.SGD', 't', 'nan', 'v', '0.1', '0.9'], /non-finite value at element 9/],
  ['SGD same keys', ['PL.SGD', 't', 't', 'v', '0.1', '0.9'], /given twice/],
  // PL.CHECKSUM ... RANGE
  ['CHECKSUM RANGE past the end', ['PL.CHECKSUM', 't', 'RANGE', '10', '7'], /RANGE \[10, 17\) runs past "t"'s 16 elements/],
  ['CHECKSUM bad FROM', ['PL.CHECKSUM', 't', 'RANGE', '0', '4', 'FROM', '-000000000000001'], /FROM needs a state of 16 hex digits/],
  ['CHECKSUM short FROM', ['PL.CHECKSUM', 't', 'RANGE', '0', '4', 'FROM', 'abc'], /FROM needs a state of 16 hex digits/],
  ['CHECKSUM not RANGE', ['PL.CHECKSUM', 't', 'SLICE', '0', '4'], /unexpected argument "SLICE"/],
  ['CHECKSUM arity', ['PL.CHECKSUM', 't', 'RANGE', '0'], ARITY],
  // PL.AGGREGATE ... RANGE
  ['AGGREGATE RANGE with KRUM', ['PL.AGGREGATE', 't', 'RANGE', '0', '4', 'KRUM', '0', '1', '3', 'g', 't', 'g8'], /KRUM needs whole vectors/],
  ['AGGREGATE RANGE past the end', ['PL.AGGREGATE', 't', 'RANGE', '10', '10', 'MEAN', '2', 'g', 'withttl'], /RANGE \[10, 20\) runs past the inputs' 16 elements/],
  ['AGGREGATE RANGE dst missing', ['PL.AGGREGATE', 'nodst', 'RANGE', '0', '4', 'MEAN', '2', 'g', 'withttl'], /with RANGE, dst "nodst" must already hold the inputs' 16 elements/],
  ['AGGREGATE RANGE count 0', ['PL.AGGREGATE', 't', 'RANGE', '0', '0', 'MEAN', '1', 'g'], /RANGE count must be/],
  ['AGGREGATE RANGE arity', ['PL.AGGREGATE', 't', 'RANGE', '0', '4', 'MEAN'], ARITY],
  // PL.AGGREGATE ... OFFSETS
  ['AGGREGATE OFFSETS without RANGE', ['PL.AGGREGATE', 't', 'MEAN', '2', 'g', 'g8', 'OFFSETS', '0', '0'], /OFFSETS needs RANGE/],
  ['AGGREGATE OFFSETS count', ['PL.AGGREGATE', 't', 'RANGE', '0', '4', 'MEAN', '2', 'g', 'g8', 'OFFSETS', '0'], /OFFSETS needs 2 offsets, one per key, got 1/],
  ['AGGREGATE OFFSETS too many', ['PL.AGGREGATE', 't', 'RANGE', '0', '4', 'MEAN', '2', 'g', 'g8', 'OFFSETS', '0', '0', '0'], /OFFSETS needs 2 offsets, one per key, got 3/],
  ['AGGREGATE OFFSETS negative', ['PL.AGGREGATE', 't', 'RANGE', '0', '4', 'MEAN', '2', 'g', 'g8', 'OFFSETS', '0', '-1'], /an offset of OFFSETS must be/],
  ['AGGREGATE OFFSETS text', ['PL.AGGREGATE', 't', 'RANGE', '0', '4', 'MEAN', '2', 'g', 'g8', 'OFFSETS', '0', 'x'], /an offset of OFFSETS must be an integer/],
  ['AGGREGATE OFFSETS past an input', ['PL.AGGREGATE', 't', 'RANGE', '0', '4', 'MEAN', '2', 'g', 'g8', 'OFFSETS', '0', '6'], /input "g8": \[6, 10\) runs past its 8 elements/],
  ['AGGREGATE OFFSETS dst short', ['PL.AGGREGATE', 'g8', 'RANGE', '6', '4', 'MEAN', '2', 'g', 't', 'OFFSETS', '0', '0'], /with OFFSETS, dst "g8" must already hold RANGE \[6, 10\)/],
  ['AGGREGATE OFFSETS dst missing', ['PL.AGGREGATE', 'nodst', 'RANGE', '0', '4', 'MEAN', '2', 'g', 't', 'OFFSETS', '0', '0'], /with OFFSETS, dst "nodst" must already hold RANGE \[0, 4\)/],
  ['AGGREGATE OFFSETS duplicate', ['PL.AGGREGATE', 't', 'RANGE', '0', '4', 'MEAN', '2', 'g', 'g', 'OFFSETS', '0', '4'], /"g" is given twice/],
  ['AGGREGATE OFFSETS NaN', ['PL.AGGREGATE', 't', 'RANGE', '0', '12', 'MEAN', '2', 'g', 'nan', 'OFFSETS', '0', '0'], /input "nan" has a non-finite value/],
  // PL.ADAM
  ['ADAM arity', ['PL.ADAM', 't', 'g', 'm', 'v', 'st'], ARITY],
  ['ADAM BETA1 1', ['PL.ADAM', 't', 'g', 'm', 'v', 'st', '0.1', 'BETA1', '1'], /BETA1 must be in \[0, 1\)/],
  ['ADAM lr 2', ['PL.ADAM', 't', 'g', 'm', 'v', 'st', '2'], /lr must be in \[0, 1\]/],
  ['ADAM EPS 5', ['PL.ADAM', 't', 'g', 'm', 'v', 'st', '0.1', 'EPS', '5'], /EPS must be in \(0, 1\]/],
  ['ADAM BETA2 negative', ['PL.ADAM', 't', 'g', 'm', 'v', 'st', '0.1', 'BETA2', '-0.1'], /BETA2/],
  ['ADAM EPS 0', ['PL.ADAM', 't', 'g', 'm', 'v', 'st', '0.1', 'EPS', '0'], /EPS must be in \(0/],
  ['ADAM lr text', ['PL.ADAM', 't', 'g', 'm', 'v', 'st', 'fast'], /lr must be a finite number/],
  ['ADAM option twice', ['PL.ADAM', 't', 'g', 'm', 'v', 'st', '0.1', 'WD', '0', 'WD', '0'], /unexpected argument "WD"/],
  ['ADAM step text', ['PL.ADAM', 't', 'g', 'm', 'v', 'step', '0.1'], /step "step" holds "abc"/],
  ['ADAM step negative', ['PL.ADAM', 't', 'g', 'm', 'v', 'negstep', '0.1'], /not a step count/],
  ['ADAM step list', ['PL.ADAM', 't', 'g', 'm', 'v', 'l', '0.1'], /wrong type: step/],
  ['ADAM m length', ['PL.ADAM', 't', 'g', 'v8', 'v', 'st', '0.1'], /first moment has 8 elements/],
  ['ADAM missing grad', ['PL.ADAM', 't', 'nope', 'm', 'v', 'st', '0.1'], /does not exist/],
  ['ADAM NaN grad', ['PL.ADAM', 't', 'nan', 'm', 'v', 'st', '0.1'], /non-finite/],
  ['ADAM same keys', ['PL.ADAM', 't', 'g', 'm', 'm', 'st', '0.1'], /given twice/],
  // PL.AGGREGATE
  ['AGGREGATE arity', ['PL.AGGREGATE', 'd', 'MEAN', '1'], ARITY],
  ['AGGREGATE rule', ['PL.AGGREGATE', 'd', 'MODE', '1', 't'], /unknown rule "MODE"/],
  ['AGGREGATE n mismatch', ['PL.AGGREGATE', 'd', 'MEAN', '3', 't', 'g'], /n is 3 but 2 keys follow/],
  ['AGGREGATE n 0', ['PL.AGGREGATE', 'd', 'MEAN', '0', 't'], /n must be between 1/],
  ['AGGREGATE duplicate', ['PL.AGGREGATE', 'd', 'MEAN', '3', 't', 'g', 't'], /"t" is given twice/],
  ['AGGREGATE lengths', ['PL.AGGREGATE', 'd', 'MEAN', '2', 't', 'g8'], /has 16 elements, expected 8|has 8 elements, expected 16/],
  ['AGGREGATE missing', ['PL.AGGREGATE', 'd', 'MEDIAN', '2', 't', 'nope'], /input "nope" does not exist/],
  ['AGGREGATE NaN', ['PL.AGGREGATE', 'd', 'MEAN', '2', 't', 'nan'], /input "nan" has a non-finite value/],
  ['AGGREGATE odd', ['PL.AGGREGATE', 'd', 'MEAN', '2', 't', 'odd'], /7 bytes/],
  ['AGGREGATE TRIMMED too many', ['PL.AGGREGATE', 'd', 'TRIMMED', '1', '2', 't', 'g'], /TRIMMED 1 needs more than 2 inputs/],
  ['AGGREGATE TRIMMED text', ['PL.AGGREGATE', 'd', 'TRIMMED', 'x', '2', 't', 'g'], /TRIMMED k must be an integer/],
  ['AGGREGATE KRUM too few', ['PL.AGGREGATE', 'd', 'KRUM', '1', '1', '4', 't', 'g', 'g8', 'v8'], /KRUM 1 needs more than 4 inputs/],
  ['AGGREGATE KRUM m 0', ['PL.AGGREGATE', 'd', 'KRUM', '0', '0', '3', 't', 'g', 'run'], /KRUM m must be between 1/],
  ['AGGREGATE KRUM m > n', ['PL.AGGREGATE', 'd', 'KRUM', '0', '4', '3', 't', 'g', 'run'], /KRUM m is 4 but only 3 inputs/],
  ['AGGREGATE dst hash', ['PL.AGGREGATE', 'h', 'MEAN', '2', 't', 'g'], /wrong type: dst "h"/],
];

describe('bad input is refused and changes nothing', () => {
  beforeEach(populate);

  it.each(cases)('%s', async (_label, args, expected) => {
    const before = await snapshot(client);
    const message = await errorOf(client, ...args);
    expect(message).toMatch(expected === ARITY ? ARITY : PL);
    expect(message).toMatch(expected);
    expect(message).not.toMatch(/[\r\n]/);
    expect(await snapshot(client)).toEqual(before);
    expect(await client.ping()).toBe('PONG');
  });

  it('a repeated contribution id changes nothing', async () => {
    const before = await snapshot(client);
    expect(await client.sendCommand(['PL.ACCUM', 'run', 'runavg', 'id1', '3', T16])).toEqual([1, 3, 0]);
    expect(await client.sendCommand(['PL.ACCUM', 'fin', 'finavg', 'id1', '1', bytes(f32(...new Array(16).fill(5)))])).toEqual([1, 1, 1]);
    expect(await snapshot(client)).toEqual(before);
  });

  it('error messages stay one printable line, whatever the key name', async () => {
    const message = await errorOf(client, 'PL.LEN', Buffer.from('bad\r\nname\x00\xff'.repeat(20), 'latin1'));
    expect(message).toMatch(/^ERR peerless: tensor "bad\?\?name\?\?.*\.\.\." does not exist$/);
  });
});

describe('random garbage and mutated commands (the module fuzzer, a short run; npm run fuzz runs 100,000)', () => {
  it('never takes the server down, answers one-line errors, and leaves keys it does not name alone', async () => {
    const r = await fuzzModule(client, 4000, 12345);
    expect(r.commands).toBe(4000);
    expect(r.ok).toBeGreaterThan(100); // mutations keep many commands valid, so deep paths run
    expect(r.strange).toEqual([]);
    expect(r.bystandersIntact).toBe(true);
    expect(await client.ping()).toBe('PONG');
    // the server's memory use stays sane (no huge allocation slipped through)
    expect(r.usedMemoryBytes).toBeLessThan(256 * 1024 * 1024);
  });
});
