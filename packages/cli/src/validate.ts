import { stat } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { buildSnapshot, checkSnapshot, compilePolicy, formatIssue, loadPolicyDir, parseYamlDocuments, type LoadedObject, type PolicyIssue } from '@sluice/policy';

export interface ValidateResult {
  readonly objects: number;
  readonly problems: string[];
}

/**
 * Everything the control plane and the sidecar would check, offline: YAML, schema, references, and
 * the sidecar's own snapshot checks (regular expressions, time zones, URLs) on a snapshot holding
 * every object.
 */
export async function validatePaths(paths: readonly string[]): Promise<ValidateResult> {
  const objects: LoadedObject[] = [];
  const issues: PolicyIssue[] = [];
  for (const p of paths) {
    const r = (await stat(p)).isDirectory() ? await loadPolicyDir(p) : parseYamlDocuments(await readFile(p, 'utf8'), basename(p));
    objects.push(...r.objects);
    issues.push(...r.issues);
  }
  const set = compilePolicy(objects, {});
  issues.push(...set.issues);
  const all = [...set.objects.values()].filter((o) => o.kind !== 'LLMBackend');
  const { snapshot } = buildSnapshot(set, all, { resolveSecret: () => undefined });
  const problems = [...issues.map(formatIssue), ...checkSnapshot(snapshot).map((p) => `${p.resource}: ${p.message}`)];
  return { objects: objects.length, problems };
}
