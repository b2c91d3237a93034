import { expect } from 'vitest';
import { AttestError } from '../../providers/common/errors.js';

/** The stable code of the AttestError `p` rejects with (fails the test if it resolves or throws anything else). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(AttestError);
  return (e as AttestError).code;
}
