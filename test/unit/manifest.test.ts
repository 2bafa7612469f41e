import { describe, expect, it } from 'vitest';
import { assertRuntimeSupported, parseManifest, type Manifest } from '../../lambdas/core/manifest.ts';
import { refusal } from '../helpers/plugin-error.ts';


const base = 'name: my-plugin\nversion: 1.2.0\n';

describe('parseManifest', () => {
  it('parses a full manifest', () => {
    const manifest = parseManifest(`
name: my-plugin
version: 1.2.0-beta.1+build.5
description: Does useful things
author: Ada <ada@example.com>
tags: [search, web]
skills:
  - skills/search
  - fetch
runtimes: [claude-code, hermes]
`);
    expect(manifest).toEqual<Manifest>({
      name: 'my-plugin',
      version: '1.2.0-beta.1+build.5',
      description: 'Does useful things',
      author: 'Ada <ada@example.com>',
      tags: ['search', 'web'],
      skills: ['skills/search', 'fetch'],
      runtimes: ['claude-code', 'hermes'],
    });
  });

  it('fills defaults and treats empty optional fields as absent', () => {
    expect(parseManifest(base)).toEqual({ name: 'my-plugin', version: '1.2.0', description: '', author: '', tags: [], skills: [], runtimes: [] });
    expect(parseManifest(`${base}tags:\ndescription:\n`)).toMatchObject({ tags: [], description: '' });
  });

  it('reads a healthcheck: the command as written, timeoutSeconds defaulting to 30', () => {
    expect(parseManifest(`${base}healthcheck:\n  command: curl -fsS http://127.0.0.1:8080/health\n`).healthcheck).toEqual({ command: 'curl -fsS http://127.0.0.1:8080/health', timeoutSeconds: 30 });
    expect(parseManifest(`${base}healthcheck:\n  command: |\n    set -e\n    test -f skills/greet/SKILL.md\n  timeoutSeconds: 300\n`).healthcheck).toEqual({ command: 'set -e\ntest -f skills/greet/SKILL.md\n', timeoutSeconds: 300 });
    expect(parseManifest(`${base}healthcheck:\n  command: "x"\n  timeoutSeconds: 1\n`).healthcheck?.timeoutSeconds).toBe(1);
    // Absent, or empty: no health check (the built-in checks still run).
    expect(parseManifest(base)).not.toHaveProperty('healthcheck');
    expect(parseManifest(`${base}healthcheck:\n`)).not.toHaveProperty('healthcheck');
  });

  it('ignores unknown keys', () => {
    const manifest = parseManifest(`${base}homepage: https://example.com\nx-extra: {a: 1}\n`);
    expect(manifest).not.toHaveProperty('homepage');
    expect(manifest).not.toHaveProperty('x-extra');
  });

  it.each([
    ['missing name', 'version: 1.0.0\n', 'name: is required'],
    ['missing version', 'name: my-plugin\n', 'version: is required'],
    ['upper-case name', 'name: MyPlugin\nversion: 1.0.0\n', 'name: must match'],
    ['name with a slash', 'name: ../evil\nversion: 1.0.0\n', 'name: must match'],
    ['name "."', 'name: "."\nversion: 1.0.0\n', 'name: must match'],
    ['numeric name', 'name: 42\nversion: 1.0.0\n', 'name: must be a string, got number 42'],
    ['version read as a number', 'name: p\nversion: 1.0\n', 'version: must be a string, got number 1 (quote it)'],
    ['version with a space', 'name: p\nversion: 1.0 beta\n', 'version: must match'],
    ['version with a slash', 'name: p\nversion: 1/../x\n', 'version: must match'],
    ['long description', `${base}description: ${'x'.repeat(1025)}\n`, 'description: must be at most 1024 characters'],
    ['description not a string', `${base}description: [a, b]\n`, 'description: must be a string, got a list'],
    ['long author', `${base}author: ${'x'.repeat(257)}\n`, 'author: must be at most 256 characters'],
    ['tags not a list', `${base}tags: search\n`, 'tags: must be a list, got a string'],
    ['too many tags', `${base}tags: [${Array.from({ length: 65 }, (_, i) => `t${i}`).join(', ')}]\n`, 'tags: must list at most 64 tags'],
    ['long tag', `${base}tags: [ok, ${'t'.repeat(65)}]\n`, 'tags[1]: must be at most 64 characters'],
    ['tag not a string', `${base}tags: [ok, {a: 1}]\n`, 'tags[1]: must be a string, got a mapping'],
    ['skill with ..', `${base}skills: [skills/../../etc]\n`, 'skills[0]: must be a relative path inside the plugin'],
    ['absolute skill', `${base}skills: [/etc/passwd]\n`, 'skills[0]: must be a relative path'],
    ['empty skill', `${base}skills: [""]\n`, 'skills[0]: must be a relative path'],
    ['skill with a backslash', `${base}skills: ['a\\b']\n`, 'skills[0]: must be a relative path'],
    ['too many skills', `${base}skills: [${Array.from({ length: 257 }, (_, i) => `s${i}`).join(', ')}]\n`, 'skills: must list at most 256 skills'],
    ['unknown runtime', `${base}runtimes: [claude-code, vscode]\n`, 'runtimes[1]: must be one of claude-code, hermes, langgraph, external'],
    ['runtimes not a list', `${base}runtimes: hermes\n`, 'runtimes: must be a list'],
    ['healthcheck not a mapping', `${base}healthcheck: curl localhost\n`, 'healthcheck: must be a mapping, got a string'],
    ['healthcheck without a command', `${base}healthcheck:\n  timeoutSeconds: 5\n`, 'healthcheck.command: is required'],
    ['healthcheck with a blank command', `${base}healthcheck:\n  command: "  "\n`, 'healthcheck.command: must not be empty'],
    ['healthcheck command not a string', `${base}healthcheck:\n  command: [a, b]\n`, 'healthcheck.command: must be a string, got a list'],
    ['healthcheck command over 2048 bytes', `${base}healthcheck:\n  command: "${'é'.repeat(1025)}"\n`, 'healthcheck.command: must be at most 2048 bytes'],
    ['healthcheck command with a control character', `${base}healthcheck:\n  command: "true\\u001b[2J"\n`, 'healthcheck.command: must not contain control characters'],
    ['healthcheck timeout 0', `${base}healthcheck:\n  command: "true"\n  timeoutSeconds: 0\n`, 'healthcheck.timeoutSeconds: must be between 1 and 300 seconds'],
    ['healthcheck timeout over 300', `${base}healthcheck:\n  command: "true"\n  timeoutSeconds: 301\n`, 'healthcheck.timeoutSeconds: must be between 1 and 300 seconds'],
    ['healthcheck timeout with a fraction', `${base}healthcheck:\n  command: "true"\n  timeoutSeconds: 2.5\n`, 'healthcheck.timeoutSeconds: must be a whole number, got number 2.5'],
    ['healthcheck timeout as text', `${base}healthcheck:\n  command: "true"\n  timeoutSeconds: 30s\n`, 'healthcheck.timeoutSeconds: must be a number, got a string'],
    ['healthcheck with a misspelt key', `${base}healthcheck:\n  command: "true"\n  timeout: 30\n`, 'healthcheck: unknown key "timeout" (healthcheck takes command and timeoutSeconds)'],
  ])('refuses %s', (_label, text, problem) => {
    const error = refusal(() => parseManifest(text));
    expect(error.code).toBe('InvalidManifest');
    expect(error.message).toMatch(/^plugin\.yaml: /);
    expect(error.message).toContain(problem);
    expect(error.hint).not.toBe('');
  });

  it('lists every problem at once', () => {
    const error = refusal(() => parseManifest('name: Bad Name\ntags: [1]\nruntimes: [nope]\n'));
    expect(error.message).toContain('name: must match');
    expect(error.message).toContain('version: is required');
    expect(error.message).toContain('tags[0]: must be a string');
    expect(error.message).toContain('runtimes[0]: must be one of');
    expect(error.message.split('; ')).toHaveLength(4);
  });

  it.each([
    ['an empty file', '', 'got empty'],
    ['a comment only', '# nothing\n', 'got empty'],
    ['a list', '- name: x\n', 'got a list'],
    ['a scalar', 'just text\n', 'got a string'],
    ['a number', '42\n', 'got number 42'],
  ])('refuses %s as not a mapping', (_label, text, got) => {
    const error = refusal(() => parseManifest(text));
    expect(error.code).toBe('InvalidManifest');
    expect(error.message).toContain('must be a mapping');
    expect(error.message).toContain(got);
  });

  it('refuses invalid YAML', () => {
    const error = refusal(() => parseManifest('name: [unclosed\nversion: 1.0.0\n'));
    expect(error.code).toBe('InvalidManifest');
    expect(error.message).toMatch(/^plugin\.yaml: not valid YAML: /);
  });

  it('refuses duplicate keys', () => {
    expect(refusal(() => parseManifest('name: a\nname: b\nversion: 1.0.0\n')).code).toBe('InvalidManifest');
  });

  it('refuses several YAML documents', () => {
    expect(refusal(() => parseManifest(`${base}---\n${base}`)).code).toBe('InvalidManifest');
  });

  it('refuses an alias bomb instead of expanding it', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    const bomb = `${base}${lines.join('\n')}\n`;
    const error = refusal(() => parseManifest(bomb));
    expect(error.code).toBe('InvalidManifest');
    expect(error.message).toMatch(/alias/i);
  });

  it('allows a few aliases', () => {
    const manifest = parseManifest(`${base}x-common: &t [a, b]\ntags: *t\n`);
    expect(manifest.tags).toEqual(['a', 'b']);
  });
});

describe('assertRuntimeSupported', () => {
  const manifest = (runtimes: string): Manifest => parseManifest(`${base}runtimes: ${runtimes}\n`);

  it('accepts any runtime when the manifest lists none', () => {
    for (const runtime of ['claude-code', 'hermes', 'langgraph', 'external']) {
      expect(() => assertRuntimeSupported(manifest('[]'), runtime)).not.toThrow();
    }
  });

  it('accepts a listed runtime', () => {
    expect(() => assertRuntimeSupported(manifest('[hermes, langgraph]'), 'langgraph')).not.toThrow();
  });

  it('refuses an unlisted runtime with the exact message and hint', () => {
    const error = refusal(() => assertRuntimeSupported(manifest('[claude-code, hermes]'), 'langgraph'));
    expect(error.code).toBe('RuntimeMismatch');
    expect(error.category).toBe('refused');
    expect(error.message).toBe('plugin my-plugin supports runtimes claude-code, hermes; workspace runs langgraph');
    expect(error.hint).toBe('install it into a workspace running one of claude-code, hermes, or add langgraph to runtimes in plugin.yaml');
  });
});
