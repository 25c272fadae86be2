import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseYamlDocuments, type LoadedObject, type PolicyIssue } from '@sluice/policy';
import type { PolicySource, SecretRequest } from './source.js';

interface FileState {
  readonly text: string;
  readonly objects: LoadedObject[];
  readonly issues: PolicyIssue[];
}

/**
 * Policy from a directory of YAML files (the one-process mode and CI). The directory is watched;
 * any change reloads it. A file with a YAML syntax error keeps its last good objects (and reports
 * the error), so a half-saved edit never takes policy away. Credentials come from the environment
 * (`auth.env`); `secretRef` is not available without Kubernetes.
 */
export class FileSource implements PolicySource {
  readonly name: string;
  readonly #dir: string;
  readonly #env: NodeJS.ProcessEnv;
  #files = new Map<string, FileState>();
  #dirIssue: PolicyIssue | undefined;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #reloading: Promise<boolean> | undefined;

  constructor(dir: string, env: NodeJS.ProcessEnv = process.env) {
    this.#dir = resolve(dir);
    this.#env = env;
    this.name = `files:${this.#dir}`;
  }

  async start(onChange: () => void): Promise<void> {
    await this.reload();
    const changed = (): void => {
      void this.reload().then((c) => {
        if (c) onChange();
      });
    };
    try {
      this.#watcher = watch(this.#dir, { persistent: false }, changed);
      this.#watcher.on('error', () => undefined);
    } catch {
      // fs.watch unavailable: the poll below still sees changes.
    }
    // A slow poll as a safety net (network filesystems, editors that defeat inotify).
    this.#poll = setInterval(changed, 2000);
    this.#poll.unref();
  }

  /** Re-reads the directory; resolves true when anything changed. */
  reload(): Promise<boolean> {
    if (this.#reloading) return this.#reloading.then(() => this.#reloadNow());
    this.#reloading = this.#reloadNow().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #reloadNow(): Promise<boolean> {
    let names: string[];
    try {
      names = (await readdir(this.#dir)).filter((f) => /\.ya?ml$/.test(f) && !f.startsWith('.')).sort();
    } catch (e) {
      this.#dirIssue = { object: `directory ${this.#dir}`, path: '(dir)', message: (e as Error).message, code: 'SLUICE_ERR_POLICY_YAML' };
      return false;
    }
    let changed = names.length !== this.#files.size || names.some((n) => !this.#files.has(n));
    this.#dirIssue = undefined;
    const next = new Map<string, FileState>();
    for (const name of names) {
      let text: string;
      try {
        text = await readFile(join(this.#dir, name), 'utf8');
      } catch {
        continue; // removed between readdir and read
      }
      const prev = this.#files.get(name);
      if (prev !== undefined && prev.text === text) {
        next.set(name, prev);
        continue;
      }
      changed = true;
      const parsed = parseYamlDocuments(text, name);
      // While a file's YAML is broken, its last good objects keep serving.
      const objects = parsed.issues.length > 0 && prev !== undefined ? prev.objects : parsed.objects;
      next.set(name, { text, objects, issues: parsed.issues });
    }
    this.#files = next;
    return changed;
  }

  objects(): LoadedObject[] {
    return [...this.#files.values()].flatMap((f) => f.objects);
  }

  issues(): PolicyIssue[] {
    const fileIssues = [...this.#files.values()].flatMap((f) => f.issues);
    return this.#dirIssue === undefined ? fileIssues : [this.#dirIssue, ...fileIssues];
  }

  resolveSecret(_namespace: string, auth: SecretRequest): string | undefined {
    if (auth.env !== undefined) {
      const v = this.#env[auth.env];
      return v === undefined || v === '' ? undefined : v;
    }
    return undefined;
  }

  async close(): Promise<void> {
    this.#watcher?.close();
    if (this.#poll) clearInterval(this.#poll);
  }
}
