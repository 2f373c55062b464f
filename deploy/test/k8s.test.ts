/**
 * `deploy/k8s/`: no cluster runs here, so every manifest is parsed and checked for what would
 * break at apply or start time: references between objects, Service ports against container
 * ports, and each container's settings against its service's config schema (`loadConfig`).
 */
import { spawnSync } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { requireProgram, tempDir, type TempDir } from '@lattice/testing';
import { loadServiceConfig, unknownLatticeVariables } from './service-config.js';
import { DEPLOY_DIR, readDeployFile } from './support.js';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string };
    configMapKeyRef?: { name: string; key: string };
    fieldRef?: { fieldPath: string };
  };
}

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string }[];
}

interface PodSpec {
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string }; emptyDir?: object }[];
}

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  spec?: {
    replicas?: number;
    serviceName?: string;
    selector?: Record<string, string> & { matchLabels?: Record<string, string> };
    template?: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: { metadata: { name: string } }[];
    ports?: { name: string; port: number; targetPort: number | string }[];
  };
  resources?: string[];
}

const K8S_DIR = 'k8s';
const CLUSTER_SCOPED = new Set(['Namespace', 'Kustomization']);

async function manifestFiles(): Promise<string[]> {
  return (await readdir(join(DEPLOY_DIR, K8S_DIR))).filter((f) => f.endsWith('.yaml')).sort();
}

async function readManifests(file: string): Promise<Manifest[]> {
  const docs = parseAllDocuments(await readDeployFile(`${K8S_DIR}/${file}`));
  if (!Array.isArray(docs)) throw new Error(`${file}: not a YAML stream`);
  return docs.map((doc) => {
    expect(
      doc.errors.map((e) => e.message),
      file,
    ).toEqual([]);
    return doc.toJS() as Manifest;
  });
}

async function allManifests(): Promise<Manifest[]> {
  const out: Manifest[] = [];
  for (const file of await manifestFiles()) {
    if (file !== 'kustomization.yaml') out.push(...(await readManifests(file)));
  }
  return out;
}

function find(manifests: readonly Manifest[], kind: string, name: string): Manifest {
  const m = manifests.find((x) => x.kind === kind && x.metadata.name === name);
  if (m === undefined) throw new Error(`no ${kind} ${name}`);
  return m;
}

function matches(
  labels: Readonly<Record<string, string>>,
  selector: Record<string, string>,
): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The environment a container's process sees (secrets and fields as placeholders). */
function containerEnv(
  container: Container,
  manifests: readonly Manifest[],
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef !== undefined) {
      Object.assign(env, find(manifests, 'ConfigMap', from.configMapRef.name).data);
    }
  }
  Object.assign(env, ownEnv(container));
  return env;
}

function ownEnv(container: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of container.env ?? []) {
    env[v.name] = v.value ?? `from-${v.valueFrom?.secretKeyRef?.key ?? 'field'}`;
  }
  return env;
}

describe('deploy/k8s', () => {
  let dir: TempDir;
  beforeEach(async () => {
    dir = await tempDir('lattice-deploy-k8s-');
  });
  afterEach(async () => {
    await dir.remove();
  });

  it('every manifest parses, is named, and lives in the lattice namespace', async () => {
    const manifests = await allManifests();
    expect(manifests.length).toBeGreaterThan(5);
    for (const m of manifests) {
      expect(m.apiVersion, m.kind).toMatch(/^(v1|apps\/v1)$/);
      expect(m.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      if (!CLUSTER_SCOPED.has(m.kind))
        expect(m.metadata.namespace, m.metadata.name).toBe('lattice');
    }
    find(manifests, 'Namespace', 'lattice');
    const [kustomization] = await readManifests('kustomization.yaml');
    expect([...(kustomization?.resources ?? [])].sort()).toEqual(
      (await manifestFiles()).filter((f) => f !== 'kustomization.yaml'),
    );
  });

  it('every Service selects a pod and targets ports its containers open', async () => {
    const manifests = await allManifests();
    const pods = manifests.filter((m) => m.kind === 'StatefulSet');
    for (const service of manifests.filter((m) => m.kind === 'Service')) {
      const selector = service.spec?.selector ?? {};
      const selected = pods.filter((p) =>
        matches(p.spec?.template?.metadata.labels ?? {}, selector),
      );
      expect(selected.length, `Service ${service.metadata.name} selects a pod`).toBe(1);
      const ports = (selected[0]?.spec?.template?.spec.containers ?? []).flatMap(
        (c) => c.ports ?? [],
      );
      for (const port of service.spec?.ports ?? []) {
        const target = port.targetPort;
        const found =
          typeof target === 'string'
            ? ports.find((p) => p.name === target)
            : ports.find((p) => p.containerPort === target);
        expect(
          found,
          `Service ${service.metadata.name} port ${port.name} → ${target}`,
        ).toBeDefined();
      }
    }
    // StatefulSets are governed by a headless Service of that name.
    for (const set of pods) {
      const governing = find(manifests, 'Service', set.spec?.serviceName ?? '');
      expect(governing.spec?.selector).toEqual(set.spec?.selector?.matchLabels);
    }
  });

  it('every mounted volume and referenced ConfigMap exists', async () => {
    const manifests = await allManifests();
    for (const set of manifests.filter((m) => m.kind === 'StatefulSet')) {
      const pod = set.spec?.template?.spec;
      const volumes = new Set([
        ...(pod?.volumes ?? []).map((v) => v.name),
        ...(set.spec?.volumeClaimTemplates ?? []).map((v) => v.metadata.name),
      ]);
      for (const volume of pod?.volumes ?? []) {
        if (volume.configMap !== undefined) find(manifests, 'ConfigMap', volume.configMap.name);
      }
      for (const container of pod?.containers ?? []) {
        for (const m of container.volumeMounts ?? []) {
          expect(volumes, `${set.metadata.name}/${container.name} mounts ${m.name}`).toContain(
            m.name,
          );
        }
        for (const from of container.envFrom ?? []) {
          if (from.configMapRef) find(manifests, 'ConfigMap', from.configMapRef.name);
        }
      }
    }
  });

  it('the peer pod runs merge, multiplexer, transport-lan and gateway with settings they accept', async () => {
    const manifests = await allManifests();
    const peer = find(manifests, 'StatefulSet', 'lattice-peer');
    expect(peer.spec?.replicas).toBe(1);
    const containers = peer.spec?.template?.spec.containers ?? [];
    expect(containers.map((c) => c.name)).toEqual([
      'merge',
      'multiplexer',
      'transport-lan',
      'gateway',
    ]);
    const configs = new Map<string, Record<string, unknown>>();
    for (const container of containers) {
      const [service, ...flags] = container.args ?? [];
      expect(service, container.name).toBe(container.name);
      expect(unknownLatticeVariables(container.name, ownEnv(container)), container.name).toEqual(
        [],
      );
      configs.set(
        container.name,
        loadServiceConfig(container.name, { argv: flags, env: containerEnv(container, manifests) }),
      );
    }
    // Container ports are the ports the services listen on.
    const portsOf = (name: string): number[] =>
      (containers.find((c) => c.name === name)?.ports ?? []).map((p) => p.containerPort).sort();
    expect(portsOf('transport-lan')).toEqual([configs.get('transport-lan')?.['port']]);
    const gateway = configs.get('gateway') ?? {};
    expect(portsOf('gateway')).toEqual([gateway['grpcPort'], gateway['httpPort']].sort());
    expect(gateway['host']).toBe('0.0.0.0');
    expect(gateway['apiKey']).toEqual(['from-api-key']);
    expect(gateway['syncEndpoint']).toBe('on');
    // The gateway's secret is one the README tells how to create.
    const secret = containers
      .find((c) => c.name === 'gateway')
      ?.env?.find((v) => v.valueFrom?.secretKeyRef)?.valueFrom?.secretKeyRef;
    expect(await readDeployFile(`${K8S_DIR}/peer.yaml`)).toContain(
      `create secret generic ${secret?.name} --from-literal=${secret?.key}=`,
    );
    expect(configs.get('multiplexer')?.['transports']).toEqual(['transport-lan', 'gateway']);

    // One identity file for merge and multiplexer, on the same volume in both; the data too.
    const identity = String(configs.get('merge')?.['identityFile']);
    expect(configs.get('multiplexer')?.['identityFile']).toBe(identity);
    const volumeAt = (name: string, path: string): string | undefined =>
      containers
        .find((c) => c.name === name)
        ?.volumeMounts?.find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))
        ?.name;
    expect(volumeAt('merge', identity)).toBe('data');
    expect(volumeAt('multiplexer', identity)).toBe('data');
    expect(volumeAt('merge', String(configs.get('merge')?.['data']))).toBe('data');
    // NATS: the cluster's client Service.
    const url = new URL(String(configs.get('merge')?.['natsUrl']));
    const natsService = find(manifests, 'Service', url.hostname.split('.')[0] ?? '');
    expect(natsService.spec?.ports?.map((p) => String(p.port))).toContain(url.port);
  });

  it('the NATS StatefulSet routes to each of its pods and its configuration is valid', async () => {
    const manifests = await allManifests();
    const nats = find(manifests, 'StatefulSet', 'nats');
    const conf = find(manifests, 'ConfigMap', 'nats-config').data?.['nats.conf'] ?? '';
    const routes = [...conf.matchAll(/nats-route:\/\/([^.\s]+)\.([^.\s]+)\.lattice\.svc/g)];
    expect(routes.map((r) => r[1])).toEqual(
      Array.from({ length: nats.spec?.replicas ?? 0 }, (_, i) => `nats-${i}`),
    );
    expect(new Set(routes.map((r) => r[2]))).toEqual(new Set([nats.spec?.serviceName]));
    expect(conf).toMatch(/^max_payload: 8MB$/m);
    // nats-server -t parses the file (server_name comes from the pod's POD_NAME).
    const file = join(dir.path, 'nats.conf');
    await writeFile(file, conf);
    const check = spawnSync(requireProgram('nats-server'), ['-t', '-c', file], {
      encoding: 'utf8',
      env: { ...process.env, POD_NAME: 'nats-0' },
    });
    expect(`${check.stdout}${check.stderr}`).toContain('is valid');
    expect(check.status).toBe(0);
  });
});
