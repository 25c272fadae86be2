import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { PolicyIssue } from './validate.js';

export interface LoadedObject {
  readonly object: unknown;
  /** `file.yaml#index`. */
  readonly where: string;
}

/** Every YAML document of `text` (multi-document files allowed). Syntax errors become issues. */
export function parseYamlDocuments(text: string, file: string): { objects: LoadedObject[]; issues: PolicyIssue[] } {
  const objects: LoadedObject[] = [];
  const issues: PolicyIssue[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    const where = `${file}#${i}`;
    if (doc.errors.length > 0) {
      issues.push({ object: `document ${where}`, path: '(yaml)', message: doc.errors[0]?.message ?? 'YAML syntax error', code: 'SLUICE_ERR_POLICY_YAML' });
      return;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    objects.push({ object: value, where });
  });
  return { objects, issues };
}

/** All `*.yaml` / `*.yml` files of a directory (not recursive), in name order. */
export async function loadPolicyDir(dir: string): Promise<{ objects: LoadedObject[]; issues: PolicyIssue[] }> {
  const files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  const objects: LoadedObject[] = [];
  const issues: PolicyIssue[] = [];
  for (const f of files) {
    const r = parseYamlDocuments(await readFile(join(dir, f), 'utf8'), f);
    objects.push(...r.objects);
    issues.push(...r.issues);
  }
  return { objects, issues };
}
