import { Ajv } from 'ajv';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { packageFunction } from '../package.ts';
import { LAMBDA_RUNTIME, samTemplate, serverlessYml, type TemplateOptions } from './templates.ts';

/**
 * The SAM template, checked against a JSON schema of the resource types it uses (their
 * properties and limits as AWS documents them: runtimes, architectures, 128-10240 MB,
 * 1-900 s, NoEcho parameters), with ajv; Python's cfn-lint is not reachable here. The
 * serverless.yml is run for real by the Serverless Framework in test/training/lambda-offline.spec.ts.
 */
const intrinsic = {
  type: 'object', maxProperties: 1, minProperties: 1,
  properties: { Ref: { type: 'string' }, 'Fn::GetAtt': { type: 'array', items: { type: 'string' }, minItems: 2, maxItems: 2 } },
  additionalProperties: false,
};
const stringOr = { anyOf: [{ type: 'string' }, intrinsic] };
const policyDocument = {
  type: 'object', required: ['Version', 'Statement'], additionalProperties: false,
  properties: {
    Version: { const: '2012-10-17' },
    Statement: {
      type: 'array', minItems: 1,
      items: {
        type: 'object', required: ['Effect', 'Action'], additionalProperties: false,
        properties: {
          Effect: { enum: ['Allow', 'Deny'] },
          Principal: { type: 'object' },
          Action: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
          Resource: { anyOf: [stringOr, { type: 'array', items: stringOr }] },
        },
      },
    },
  },
};
const functionResource = {
  type: 'object', required: ['Type', 'Properties'], additionalProperties: false,
  properties: {
    Type: { const: 'AWS::Serverless::Function' },
    Properties: {
      type: 'object', additionalProperties: false,
      required: ['FunctionName', 'Architectures', 'MemorySize', 'Timeout', 'Role', 'Environment'],
      properties: {
        FunctionName: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
        CodeUri: { type: 'string' },
        Handler: { type: 'string' },
        Runtime: { enum: ['nodejs20.x', 'nodejs22.x', 'nodejs24.x'] },
        PackageType: { enum: ['Zip', 'Image'] },
        ImageUri: stringOr,
        Architectures: { type: 'array', items: { enum: ['x86_64', 'arm64'] }, minItems: 1, maxItems: 1 },
        MemorySize: { type: 'integer', minimum: 128, maximum: 10240 },
        Timeout: { type: 'integer', minimum: 1, maximum: 900 },
        Role: stringOr,
        Environment: { type: 'object', properties: { Variables: { type: 'object', additionalProperties: stringOr } }, additionalProperties: false },
        VpcConfig: {
          type: 'object', required: ['SubnetIds', 'SecurityGroupIds'], additionalProperties: false,
          properties: { SubnetIds: { type: 'array', items: { type: 'string' }, minItems: 1 }, SecurityGroupIds: { type: 'array', items: { type: 'string' }, minItems: 1 } },
        },
      },
      // A zip names its code, handler and runtime; an image its URI.
      oneOf: [{ required: ['CodeUri', 'Handler', 'Runtime'] }, { required: ['PackageType', 'ImageUri'] }],
    },
  },
};
const schema = {
  type: 'object', required: ['AWSTemplateFormatVersion', 'Transform', 'Resources', 'Outputs'], additionalProperties: false,
  properties: {
    AWSTemplateFormatVersion: { const: '2010-09-09' },
    Transform: { const: 'AWS::Serverless-2016-10-31' },
    Description: { type: 'string', maxLength: 1024 },
    Parameters: {
      type: 'object',
      additionalProperties: {
        type: 'object', required: ['Type'], additionalProperties: false,
        properties: { Type: { enum: ['String', 'Number', 'CommaDelimitedList'] }, NoEcho: { type: 'boolean' }, Description: { type: 'string' }, Default: {} },
      },
    },
    Resources: {
      type: 'object', required: ['FunctionRole', 'GradientFunction', 'EvaluateFunction'],
      properties: {
        FunctionRole: {
          type: 'object', required: ['Type', 'Properties'],
          properties: {
            Type: { const: 'AWS::IAM::Role' },
            Properties: {
              type: 'object', required: ['AssumeRolePolicyDocument'], additionalProperties: false,
              properties: { AssumeRolePolicyDocument: policyDocument, ManagedPolicyArns: { type: 'array', items: { type: 'string', pattern: '^arn:aws:iam::aws:policy/' } } },
            },
          },
        },
        GradientFunction: functionResource,
        EvaluateFunction: functionResource,
        InvokePolicy: {
          type: 'object', required: ['Type', 'Properties'],
          properties: {
            Type: { const: 'AWS::IAM::ManagedPolicy' },
            Properties: { type: 'object', required: ['PolicyDocument'], properties: { Description: { type: 'string' }, PolicyDocument: policyDocument } },
          },
        },
      },
      additionalProperties: false,
    },
    Outputs: { type: 'object', additionalProperties: { type: 'object', required: ['Value'], properties: { Value: stringOr } } },
  },
};
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);

const base: TemplateOptions = {
  backend: 'wasm', arch: 'x86_64', memoryMb: 2048, timeoutSec: 900, handler: 'lambda-entry.handler', artifact: 'peerless-function.zip',
  functionNames: { gradient: 'peerless-gradient', evaluate: 'peerless-evaluate' },
};
const check = (yaml: string) => {
  const t = parse(yaml) as Record<string, unknown>;
  expect(validate(t), JSON.stringify(validate.errors, null, 1)).toBe(true);
  return t as { Resources: Record<string, { Properties: Record<string, unknown> }>; Parameters: Record<string, { NoEcho?: boolean }> };
};

let dir: string | undefined;
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

describe('the SAM template function package writes', () => {
  it('is valid for the resource types it uses: a zip on the current runtime, a logs-only role, the password never echoed', async () => {
    dir = mkdtempSync(join(tmpdir(), 'peerless-templates-'));
    const r = await packageFunction(dir);
    expect(r.templates.map((f) => f.slice(dir!.length + 1))).toEqual(['template.yaml', 'serverless.yml']);
    const t = check(readFileSync(r.templates[0]!, 'utf8'));
    const fn = t.Resources.GradientFunction!.Properties;
    expect(fn).toMatchObject({ Runtime: LAMBDA_RUNTIME, Architectures: ['x86_64'], CodeUri: 'peerless-function.zip', Handler: 'lambda-entry.handler' });
    expect(t.Resources.FunctionRole!.Properties.ManagedPolicyArns).toEqual(['arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole']);
    expect(t.Parameters.RedisPassword!.NoEcho).toBe(true);
    expect(fn.Environment).toEqual({ Variables: { PEERLESS_BACKEND: 'wasm', PEERLESS_REDIS_USERNAME: 'peerless-functions', PEERLESS_REDIS_PASSWORD: { Ref: 'RedisPassword' } } });
  });

  it('arm64 in a VPC: the subnets and groups on both functions, and network interfaces added to the role', () => {
    const t = check(samTemplate({ ...base, arch: 'arm64', vpc: { subnetIds: ['subnet-1', 'subnet-2'], securityGroupIds: ['sg-1'] } }));
    for (const name of ['GradientFunction', 'EvaluateFunction']) {
      expect(t.Resources[name]!.Properties).toMatchObject({ Architectures: ['arm64'], VpcConfig: { SubnetIds: ['subnet-1', 'subnet-2'], SecurityGroupIds: ['sg-1'] } });
    }
    expect(t.Resources.FunctionRole!.Properties.ManagedPolicyArns).toContain('arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole');
  });

  it('for the native image: the image URI as a parameter, no runtime or handler', () => {
    const t = check(samTemplate({ ...base, backend: 'native' }));
    expect(t.Resources.GradientFunction!.Properties).toMatchObject({ PackageType: 'Image', ImageUri: { Ref: 'ImageUri' } });
    expect(t.Resources.GradientFunction!.Properties.Runtime).toBeUndefined();
  });

  it('a limit out of range would be caught: the schema is not a formality', () => {
    const t = parse(samTemplate({ ...base, memoryMb: 20_000 })) as unknown;
    expect(validate(t)).toBe(false);
    expect(JSON.stringify(validate.errors)).toMatch(/MemorySize/);
  });

  it('the serverless.yml names the same functions, runtime, architecture and limits', () => {
    const s = parse(serverlessYml({ ...base, arch: 'arm64' })) as { provider: Record<string, unknown>; functions: Record<string, { name: string }>; package: { artifact: string } };
    expect(s.provider).toMatchObject({ runtime: LAMBDA_RUNTIME, architecture: 'arm64', memorySize: 2048, timeout: 900 });
    expect(s.provider.environment).toMatchObject({ PEERLESS_REDIS_PASSWORD: '${env:PEERLESS_REDIS_PASSWORD}' });
    expect(Object.values(s.functions).map((f) => f.name)).toEqual(['peerless-gradient', 'peerless-evaluate']);
    expect(s.package.artifact).toBe('peerless-function.zip');
  });
});
