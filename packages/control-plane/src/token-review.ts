import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { parseServiceAccountUser, type TokenVerifier } from './auth.js';

export const TOKEN_AUDIENCE = 'sluice';

/**
 * A TokenVerifier backed by the Kubernetes TokenReview API: the token must be valid for the `sluice`
 * audience and belong to a service account; a projected (bound) token also names its pod.
 */
export function tokenReviewVerifier(kc: KubeConfig, audience = TOKEN_AUDIENCE): TokenVerifier {
  const api = kc.makeApiClient(AuthenticationV1Api);
  return async (token) => {
    const review = await api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [audience] } } });
    const st = review.status;
    if (st?.authenticated !== true) return { error: st?.error || 'not authenticated' };
    if (st.audiences !== undefined && st.audiences.length > 0 && !st.audiences.includes(audience)) return { error: `token audience is not ${audience}` };
    const sa = parseServiceAccountUser(st.user?.username ?? '');
    if (sa === undefined) return { error: `user ${st.user?.username ?? '?'} is not a service account` };
    const podName = st.user?.extra?.['authentication.kubernetes.io/pod-name']?.[0];
    return { ...sa, pod: podName };
  };
}

/**
 * TokenReview for people and tools reading the admin API: any token the API server authenticates
 * (its default audience), returning the user name and groups; who may read is decided by the caller.
 */
export function userTokenReview(kc: KubeConfig): (token: string) => Promise<{ username: string; groups: string[] } | { error: string }> {
  const api = kc.makeApiClient(AuthenticationV1Api);
  return async (token) => {
    const review = await api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } });
    const st = review.status;
    if (st?.authenticated !== true) return { error: st?.error || 'not authenticated' };
    return { username: st.user?.username ?? '', groups: st.user?.groups ?? [] };
  };
}
