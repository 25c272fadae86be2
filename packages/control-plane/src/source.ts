import type { LoadedObject, PolicyIssue } from '@sluice/policy';

export interface SecretRequest {
  readonly secretRef?: { readonly name: string; readonly key: string };
  readonly env?: string;
}

/** Where policy objects and the credentials they reference come from: files or Kubernetes. */
export interface PolicySource {
  readonly name: string;
  /** Loads the current objects, then calls `onChange` whenever they (or referenced secrets) change. */
  start(onChange: () => void): Promise<void>;
  objects(): LoadedObject[];
  /** Problems the source itself found (e.g. YAML syntax). */
  issues(): PolicyIssue[];
  resolveSecret(namespace: string, auth: SecretRequest): string | undefined;
  close(): Promise<void>;
}
