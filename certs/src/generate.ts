/**
 * Webhook certificates: a CA and a serving certificate for the webhook
 * Service's DNS names (plus any extra names or IPs, e.g. 127.0.0.1 for the
 * local lab), and the Kubernetes objects that carry them.
 */
import * as selfsigned from 'selfsigned';

export interface CertificateRequest {
  service: string;
  namespace: string;
  extraDnsNames?: string[];
  ipAddresses?: string[];
  days?: number;
  /** Sign with this CA instead of making a new one (leaf rotation keeps the caBundle valid). */
  ca?: { cert: string; key: string };
}

export interface CertificateBundle {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
  dnsNames: string[];
}

export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

export async function generateCertificates(r: CertificateRequest): Promise<CertificateBundle> {
  const days = r.days ?? 365;
  const notBeforeDate = new Date(Date.now() - 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + days * 86_400_000);
  const ca = r.ca ? { cert: r.ca.cert, private: r.ca.key } : await selfsigned.generate([{ name: 'commonName', value: 'switchyard-webhook-ca' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const dnsNames = [...serviceDnsNames(r.service, r.namespace), ...(r.extraDnsNames ?? [])];
  const leaf = await selfsigned.generate([{ name: 'commonName', value: dnsNames[2] }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [...dnsNames.map((value) => ({ type: 2 as const, value })), ...(r.ipAddresses ?? []).map((ip) => ({ type: 7 as const, ip }))],
      },
    ],
  });
  return { caCert: ca.cert, caKey: ca.private, cert: leaf.cert, key: leaf.private, dnsNames };
}

export function tlsSecret(name: string, namespace: string, b: CertificateBundle): Record<string, unknown> {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'switchyard' } },
    data: { 'tls.crt': b64(b.cert), 'tls.key': b64(b.key), 'ca.crt': b64(b.caCert) },
  };
}
