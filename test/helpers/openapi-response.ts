/**
 * Checks one HTTP answer against what docs/openapi.json declares for the operation (ajv, JSON
 * Schema 2020-12 as OpenAPI 3.1 uses): the status is declared, the declared required headers are
 * there and match their schemas, and the body matches the declared content schema. Used where a
 * contract proxy cannot see the answer (Prism follows redirects; it answers unknown methods
 * itself) and for answers no local fault reaches (503, 500).
 */
import { Ajv2020 } from 'ajv/dist/2020.js';

type Json = Record<string, unknown>;

export interface Answer {
  status: number;
  /** Lower-cased header names. */
  headers: Record<string, string | undefined>;
  body: string | null;
}

function resolve(doc: Json, node: Json): Json {
  let current = node;
  while (typeof current.$ref === 'string') {
    current = (current.$ref.slice(2).split('/') as string[]).reduce<Json>((n, key) => n[key] as Json, doc);
  }
  return current;
}

export function documentValidator(doc: Json) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  // Schemas refer to #/components/schemas/…: register the components under the document's id.
  ajv.addSchema({ $id: 'openapi', components: doc.components }, 'openapi');
  const compiled = new Map<string, ReturnType<typeof ajv.compile>>();
  const check = (schema: unknown, value: unknown): string | undefined => {
    const text = JSON.stringify(schema).replaceAll('"#/components/', '"openapi#/components/');
    let validate = compiled.get(text);
    if (!validate) compiled.set(text, (validate = ajv.compile(JSON.parse(text) as Json)));
    return validate(value) ? undefined : ajv.errorsText(validate.errors);
  };

  /** What is wrong with `answer` as a response of `method path` (the document's path template); [] when nothing. */
  return function violations(method: string, path: string, answer: Answer): string[] {
    const operation = ((doc.paths as Json)[path] as Json | undefined)?.[method.toLowerCase()] as Json | undefined;
    if (!operation) return [`${method} ${path} is not in the document`];
    const declared = (operation.responses as Json)[String(answer.status)] as Json | undefined;
    if (!declared) return [`${method} ${path} does not declare ${answer.status} (declares ${Object.keys(operation.responses as Json).join(', ')})`];
    const response = resolve(doc, declared);
    const problems: string[] = [];
    for (const [name, h] of Object.entries((response.headers ?? {}) as Record<string, Json>)) {
      const value = answer.headers[name.toLowerCase()];
      if (value === undefined) {
        if (h.required) problems.push(`header ${name} is required`);
        continue;
      }
      const wrong = check(h.schema, value);
      if (wrong) problems.push(`header ${name}: ${wrong}`);
    }
    const content = response.content as Record<string, { schema: unknown }> | undefined;
    if (!content) {
      if (answer.body) problems.push(`${answer.status} declares no body, got ${answer.body.slice(0, 100)}`);
      return problems;
    }
    const type = (answer.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (!content[type]) return [...problems, `content-type ${type} is not declared (${Object.keys(content).join(', ')})`];
    let body: unknown;
    try {
      body = JSON.parse(answer.body ?? '');
    } catch {
      return [...problems, `body is not JSON: ${(answer.body ?? '').slice(0, 100)}`];
    }
    const wrong = check(content[type].schema, body);
    return wrong ? [...problems, `body: ${wrong}`] : problems;
  };
}
