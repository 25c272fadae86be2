import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildSnapshot, checkSnapshot, compilePolicy, parseYamlDocuments, selectFor, type Snapshot } from '@sluice/policy';
import { KEY_ENV, policyFiles, podIdentity, ROOT_NAMESPACE, WORKLOADS } from '../src/cp-policy.js';

/** Every workload's snapshot, as the control plane builds them. */
function snapshots(variant: 0 | 1): Snapshot[] {
  const objects = [...policyFiles(variant)].flatMap(([name, text]) => {
    const parsed = parseYamlDocuments(text, name);
    assert.deepEqual(parsed.issues, [], name);
    return parsed.objects;
  });
  const set = compilePolicy(objects, { rootNamespace: ROOT_NAMESPACE });
  assert.deepEqual(set.issues, []);
  assert.equal(set.objects.size, 56);
  return WORKLOADS.map((_, i) => {
    const id = podIdentity(i);
    const { snapshot, issues } = buildSnapshot(set, selectFor(set, { namespace: id.namespace, serviceAccount: id.serviceAccount, labels: id.labels }), {
      resolveSecret: (_ns, auth) => (auth.env === undefined ? undefined : KEY_ENV[auth.env]),
    });
    assert.deepEqual(issues, []);
    assert.deepEqual(checkSnapshot(snapshot), [], `workload ${i}`);
    return snapshot;
  });
}

test('the control-plane policy is valid and gives each workload its own snapshot', () => {
  const a = snapshots(0);
  assert.equal(new Set(a.map((s) => s.version)).size, WORKLOADS.length);
  for (const s of a) {
    assert.ok(s.rules.length >= 9, 'shared, namespace and app routes');
    assert.ok(s.backends.length >= 4);
    assert.ok(s.limits.length >= 3);
  }
});

test('the measured change reaches every workload', () => {
  const a = snapshots(0);
  const b = snapshots(1);
  a.forEach((s, i) => assert.notEqual(s.version, b[i]?.version, `workload ${i}`));
});

test('simulated pods are spread evenly over the workloads', () => {
  const counts = new Map<string, number>();
  for (let i = 0; i < 1000; i++) {
    const id = podIdentity(i);
    const key = `${id.namespace}/${id.labels['app'] ?? ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  assert.equal(counts.size, WORKLOADS.length);
  for (const n of counts.values()) assert.equal(n, 100);
});
