import { readFileSync } from 'node:fs';

/** Kubernetes downward API labels file: `key="value"` per line. */
export function readLabels(file: string | undefined): Record<string, string> {
  if (file === undefined || file === '') return {};
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  const labels: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([^=]+)="(.*)"$/.exec(line.trim());
    if (m) labels[m[1] as string] = (m[2] as string).replace(/\\"/g, '"');
  }
  return labels;
}
