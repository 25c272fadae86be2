/** The README's reference tables stay true: every error code and every variable is documented. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERRORS } from '@sluice/core';
import { SIDECAR_ENV } from '../src/index.js';

const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');

test('every error code is in the README error table with its status', () => {
  for (const [code, spec] of Object.entries(ERRORS)) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} missing from README`);
    assert.ok(row.includes(`| ${spec.status}`) || code === 'SLUICE_ERR_UPSTREAM_CLIENT_ERROR', `${code} status`);
    assert.ok(row.includes(spec.anthropicType), `${code} anthropic type`);
  }
});

test('every sidecar variable is in the configuration reference with its default', () => {
  for (const v of Object.values(SIDECAR_ENV)) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${v.env}\` |`));
    assert.ok(row, `${v.env} missing from README`);
    assert.ok(v.def === '' ? row.includes('(none)') : row.includes(`\`${v.def}\``), `${v.env} default ${v.def}`);
  }
});
