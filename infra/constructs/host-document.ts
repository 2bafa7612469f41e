/**
 * The stack's own SSM Command document: the only thing the Lambda roles may send with
 * ssm:SendCommand (never AWS-RunShellScript, which would let them run anything as root on every
 * workspace instance). Its content is built from the host script at synth
 * (lambdas/core/host/ssm-document.ts): a host step sends just an operation and its arguments.
 *
 * Versioned on deploy: `UpdateMethod: NewVersion` makes a changed script a new version of the same
 * document (which becomes its default), named after the content's digest, so an operator can tell
 * in the console which host script a command ran; commands already running keep their version.
 */
import { createHash } from 'node:crypto';
import { Stack } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { RESERVED_DOCUMENT_PREFIX, ssmCommandDocument, type SsmCommandDocument } from '../../lambdas/core/host/ssm-document.ts';
import { stackScopedName } from './physical-names.ts';

/** SSM document names: 3–128 characters; AWS reserves the prefixes aws, amazon and amzn. */
const MAX_DOCUMENT_NAME = 128;

export class HostDocument extends Construct {
  readonly document: ssm.CfnDocument;
  readonly content: SsmCommandDocument;
  readonly documentName: string;
  readonly documentArn: string;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const stack = Stack.of(this);
    this.content = ssmCommandDocument();
    let name = stackScopedName(this, 'plugin-host', MAX_DOCUMENT_NAME);
    if (RESERVED_DOCUMENT_PREFIX.test(name)) name = `pi-${name}`.slice(0, MAX_DOCUMENT_NAME);
    this.documentName = name;
    const digest = createHash('sha256').update(JSON.stringify(this.content)).digest('hex').slice(0, 16);
    this.document = new ssm.CfnDocument(this, 'Document', {
      name,
      documentType: 'Command',
      documentFormat: 'JSON',
      content: this.content,
      targetType: '/AWS::EC2::Instance',
      updateMethod: 'NewVersion',
      versionName: `host-${digest}`,
    });
    this.documentArn = stack.formatArn({ service: 'ssm', resource: 'document', resourceName: name });
  }
}
