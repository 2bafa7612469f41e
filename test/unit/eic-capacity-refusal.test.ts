/**
 * Which refused tunnel upgrades the EIC adapter waits out (the endpoint at its connection limit)
 * and which fail at once (signature, IAM, bad parameters): lambdas/core/host/eic-tunnel.ts.
 */
import { expect, it } from 'vitest';
import { isCapacityRefusal } from '../../lambdas/core/host/eic-tunnel.ts';

it('treats 429, 503 and any answer naming the connection limit as capacity; 403s and bad parameters are not', () => {
  expect(isCapacityRefusal(429, '')).toBe(true);
  expect(isCapacityRefusal(503, 'Service Unavailable')).toBe(true);
  expect(isCapacityRefusal(400, '{"ErrorCode":"ThrottlingException","Message":"Rate exceeded"}')).toBe(true);
  expect(isCapacityRefusal(403, '{"ErrorCode":"LimitExceeded","Message":"The maximum number of concurrent connections has been reached"}')).toBe(true);
  expect(isCapacityRefusal(403, '{"message":"signature does not match"}')).toBe(false);
  expect(isCapacityRefusal(403, '{"ErrorCode":"AccessDeniedException","Message":"User is not authorized to perform: ec2-instance-connect:OpenTunnel"}')).toBe(false);
  expect(isCapacityRefusal(400, '{"ErrorCode":"InvalidParameter","Message":"The specified RemotePort is not valid. Specify either 22 or 3389 as the RemotePort and retry your request."}')).toBe(false);
  expect(isCapacityRefusal(undefined, '')).toBe(false);
});
