import t from 'tap';
import { decodePathIdentifier, foldCase, isUnderPrefix, parentPrefix, parseIdentifier, prefixChain, prefixProblem } from '../src/identifier/index.js';

const seg64 = 'a'.repeat(64);

t.test('valid identifiers: split at the first slash, fold ASCII case only', async (t) => {
  const cases: Array<[string, { prefix: string; suffix: string; key: string }]> = [
    ['88.100.7/ABC', { prefix: '88.100.7', suffix: 'ABC', key: '88.100.7/abc' }],
    ['88.100.7/a/b/c', { prefix: '88.100.7', suffix: 'a/b/c', key: '88.100.7/a/b/c' }],
    ['88.100.7/a/', { prefix: '88.100.7', suffix: 'a/', key: '88.100.7/a/' }],
    ['88.100.7/发动机-Ä', { prefix: '88.100.7', suffix: '发动机-Ä', key: '88.100.7/发动机-Ä' }],
    ['Ab_C-9.X/Q+R', { prefix: 'Ab_C-9.X', suffix: 'Q+R', key: 'ab_c-9.x/q+r' }],
    [`${seg64}/x`, { prefix: seg64, suffix: 'x', key: `${seg64}/x` }],
    ['1.2.3.4.5.6.7.8.9.10/x', { prefix: '1.2.3.4.5.6.7.8.9.10', suffix: 'x', key: '1.2.3.4.5.6.7.8.9.10/x' }],
    ['88.100.7/😀', { prefix: '88.100.7', suffix: '😀', key: '88.100.7/😀' }],
  ];
  for (const [text, want] of cases) {
    const id = parseIdentifier(text);
    t.match(id, { text, ...want, prefixKey: want.key.split('/')[0] }, text);
  }
  t.not(parseIdentifier('88.100.7/a').key, parseIdentifier('88.100.7/a/').key, 'trailing slash is significant');
  t.equal(parseIdentifier('88.100.7/ABC').key, parseIdentifier('88.100.7/abc').key, 'case variants share a key');
});

t.test('invalid identifiers are IDN_INVALID_IDENTIFIER (102) with a reason', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['', /empty/],
    ['88.100.7', /no "\/"/],
    ['/abc', /prefix .* is empty/],
    ['88.100.7/', /suffix .* is empty/],
    ['88..7/a', /empty segment/],
    ['.88/a', /empty segment/],
    ['88./a', /empty segment/],
    ['88 100/a', /may only contain/],
    ['88.中/a', /may only contain/],
    [`${'a'.repeat(65)}/x`, /at most 64/],
    ['1.2.3.4.5.6.7.8.9.10.11/x', /11 segments/],
    ['88.100/a\u0000b', /control/],
    ['88.100/a\nb', /control/],
    ['88.100/a\u007fb', /control/],
    ['88.100/a\u0085b', /control/],
    ['88.100/a\ud800b', /lone surrogate/],
    [`88.100/${'x'.repeat(2049 - 7)}`, /2049 bytes/],
    [`88.100/${'é'.repeat(1021)}`, /2049 bytes/],
    // Three bytes per character: 689 characters, so the byte count is taken.
    [`88.100/${'发'.repeat(680)}xx`, /2049 bytes/],
    [42, /must be a string/],
    ['0.NA/88..1', /names a prefix/],
  ];
  for (const [text, msg] of cases) {
    t.throws(() => parseIdentifier(text), { code: 'IDN_INVALID_IDENTIFIER', responseCode: 102, http: 400, message: msg }, JSON.stringify(text).slice(0, 40));
  }
  t.doesNotThrow(() => parseIdentifier(`88.100/${'x'.repeat(2048 - 7)}`), 'exactly 2048 bytes is allowed');
  t.doesNotThrow(() => parseIdentifier(`88.100/${'发'.repeat(680)}x`), 'exactly 2048 bytes of three-byte characters is allowed');
});

t.test('slashless means the prefix handle 0.NA/<prefix>', async (t) => {
  const id = parseIdentifier('88.100.7', { slashlessIsPrefix: true });
  t.equal(id.text, '0.NA/88.100.7');
  t.equal(id.namedPrefixKey, '88.100.7');
  t.equal(parseIdentifier('0.na/88.100.X').namedPrefixKey, '88.100.x');
  t.throws(() => parseIdentifier('88..1', { slashlessIsPrefix: true }), { code: 'IDN_INVALID_IDENTIFIER' });
  t.equal(parseIdentifier('88.100/x').namedPrefixKey, undefined);
});

t.test('percent-decoding: once, strict UTF-8, + stays a plus', async (t) => {
  t.equal(decodePathIdentifier('88.100.7/a%2Fb'), '88.100.7/a/b');
  t.equal(decodePathIdentifier('88.100.7/a%252F'), '88.100.7/a%2F', 'decoded once only');
  t.equal(decodePathIdentifier('88.100.7/a+b'), '88.100.7/a+b');
  t.equal(decodePathIdentifier('88.100.7/%E4%B8%AD'), '88.100.7/中');
  t.equal(decodePathIdentifier(Buffer.from('88.100.7/中').toString('latin1')), '88.100.7/中', 'raw UTF-8 bytes');
  for (const bad of ['88.100.7/%ZZ', '88.100.7/%E4%B8', '88.100.7/%ED%A0%80', '88.100.7/%C0%AF', '88.100.7/%']) {
    t.throws(() => decodePathIdentifier(bad), { code: 'IDN_INVALID_IDENTIFIER', message: /percent-escape/ }, bad);
  }
  t.throws(() => decodePathIdentifier(Buffer.from([0x38, 0x38, 0x2f, 0xff]).toString('latin1')), { code: 'IDN_INVALID_IDENTIFIER', message: /not UTF-8/ });
});

t.test('prefix helpers', async (t) => {
  t.same(prefixChain('88.100.7'), ['88.100.7', '88.100', '88']);
  t.equal(parentPrefix('88'), undefined);
  t.ok(isUnderPrefix('88.100.7', '88.100'));
  t.ok(isUnderPrefix('88.100', '88.100'));
  t.notOk(isUnderPrefix('88.1000', '88.100'));
  t.notOk(isUnderPrefix('88', '88.100'));
  t.equal(foldCase('AbC-Ä'), 'abc-Ä');
  t.equal(prefixProblem('88.100'), undefined);
});

t.test('a caller-folded key is used only when it is the fold of the text parsed', async (t) => {
  const id = parseIdentifier('88.100.7/ABC', { folded: foldCase('88.100.7/ABC') });
  t.match(id, { text: '88.100.7/ABC', key: '88.100.7/abc', prefixKey: '88.100.7' });
  // Slashless: the text parsed is 0.NA/<prefix>, so the input's fold is not its key.
  const named = parseIdentifier('88.100.7', { slashlessIsPrefix: true, folded: '88.100.7' });
  t.match(named, { text: '0.NA/88.100.7', key: '0.na/88.100.7', prefixKey: '0.na', namedPrefixKey: '88.100.7' });
});

t.test('the memo of valid prefixes answers as the check does, also past its bound', async (t) => {
  for (let round = 0; round < 2; round++) {
    t.equal(prefixProblem('88.100.7'), undefined, 'valid, then valid from the memo');
    t.match(prefixProblem('88..7'), /empty segment/, 'an invalid prefix is never memoised');
  }
  // More distinct valid prefixes than the memo holds: it restarts, the answers do not change.
  for (let i = 0; i < 3000; i++) t.equal(prefixProblem(`88.${i}`), undefined);
  t.equal(prefixProblem('88.100.7'), undefined);
  t.match(prefixProblem('88.1 00'), /may only contain/);
  t.throws(() => parseIdentifier('88.100.7 /x'), { code: 'IDN_INVALID_IDENTIFIER' });
});
