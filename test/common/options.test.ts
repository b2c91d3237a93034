import { describe, expect, it } from 'vitest';
import { isEmptyOptions } from '../../providers/common/types.js';

// Providers skip their options schema only for what isEmptyOptions calls empty, so it must call
// nothing empty that a schema could read a key from.
describe('isEmptyOptions', () => {
  it('is true for absent options and for plain objects without keys', () => {
    for (const o of [undefined, null, {}, Object.create(null) as object]) expect(isEmptyOptions(o)).toBe(true);
  });

  it('is false for anything with a key, own or inherited, and for non-objects', () => {
    class Opts {
      get debug() {
        return 'allow';
      }
    }
    const cases: unknown[] = [
      { debug: 'allow' },
      { [Symbol('x')]: 1 },
      Object.defineProperty({}, 'hidden', { value: 1, enumerable: false }),
      Object.create({ requireImdsDocument: false }) as object,
      new Opts(),
      [],
      '',
      0,
      false,
    ];
    for (const o of cases) expect(isEmptyOptions(o)).toBe(false);
  });
});
