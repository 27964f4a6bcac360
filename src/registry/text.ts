/**
 * Text that enters the audit log must be well-formed Unicode: the log hashes the JS string
 * while SQLite stores UTF-8, and a lone surrogate (legal in JSON as `\ud800`) would be
 * replaced on the way in, so the stored entry could never verify again.
 */

export const WELL_FORMED_RULE = 'strings must be well-formed Unicode (String.prototype.isWellFormed): no lone surrogate such as \\ud800';

/** Where a parsed JSON value holds a lone surrogate (in a key or a string), as a path like `$.values[0].data`, or undefined. */
export function loneSurrogatePath(value: unknown): string | undefined {
  // Iterative: a body is depth-checked before parsing, but a walk must not depend on that.
  const stack: Array<[unknown, string]> = [[value, '$']];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string') {
      if (!v.isWellFormed()) return path;
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${path}[${i}]`]);
    } else if (typeof v === 'object' && v !== null) {
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) {
        const k = keys[i]!;
        const at = /^[A-Za-z_$][\w$]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`;
        if (!k.isWellFormed()) return `${path} (a key)`;
        stack.push([(v as Record<string, unknown>)[k], at]);
      }
    }
  }
  return undefined;
}

/** True when JSON text may decode to a lone surrogate: the text itself is ill-formed, or it escapes one (`\udXXX`). */
export function mayHoldLoneSurrogate(text: string): boolean {
  return !text.isWellFormed() || /\\u[dD][89a-fA-F]/.test(text);
}

/** The message for a JSON document (`what`, such as "the JSON body" or "line 3") holding a lone surrogate at `path`. */
export function loneSurrogateMessage(what: string, path: string): string {
  return `${what} has a lone surrogate in a string at ${path}; ${WELL_FORMED_RULE}`;
}
