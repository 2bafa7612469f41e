/**
 * Which state machine definitions are already known to be valid ASL, so that the embedded runner
 * need not validate them again on every run: aws-local-stepfunctions validates a definition in the
 * StateMachine constructor (asl-validator: loading it and running it cost more than the install's
 * states on a small plugin). The build (bin/build-cli.js) validates each definition the local
 * runner builds and records its SHA-256 in build/validated-definitions.json; a definition whose
 * text is not listed there (an edited statemachine/*.asl.json, no build) is validated as before.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const VALIDATED_DEFINITIONS_FILE = 'validated-definitions.json';
const DEFAULT_FILE = fileURLToPath(new URL(`../../../build/${VALIDATED_DEFINITIONS_FILE}`, import.meta.url));

export function definitionKey(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

let known: Set<string> | undefined;

/** True when this exact definition text passed validation at build time. */
export function isValidatedDefinition(text: string, file = DEFAULT_FILE): boolean {
  if (!known || file !== DEFAULT_FILE) {
    let list: unknown = [];
    try {
      list = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      // No build (tests run the sources) or an unreadable file: validate every definition.
    }
    const set = new Set(Array.isArray(list) ? list.filter((k): k is string => typeof k === 'string') : []);
    if (file !== DEFAULT_FILE) return set.has(definitionKey(text));
    known = set;
  }
  return known.has(definitionKey(text));
}
