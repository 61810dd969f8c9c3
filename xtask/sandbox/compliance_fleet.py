"""Seed a moto server with a fleet for `cargo xtask bench compliance`: COUNT resources in eu-west-1 split
between ECS task definitions and services, RDS DB instances, secrets and Route 53 failover records, about
half of each compliant. Prints the counts as JSON. A service whose `AWS_ENDPOINT_URL_<SERVICE>` is set is seeded
there instead of at ENDPOINT_URL.

Usage: python compliance_fleet.py ENDPOINT_URL COUNT
"""

import json
import os
import secrets
import sys

import boto3

REGION = "eu-west-1"
ACCOUNT = "123456789012"


def client(service):
    # No `endpoint_url`, which would win over everything: boto3 takes a service's own variable
    # (`AWS_ENDPOINT_URL_ECS`, ...) first, then AWS_ENDPOINT_URL, which main() sets to ENDPOINT_URL.
    return boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def main():
    endpoint, count = sys.argv[1], int(sys.argv[2])
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    n_td = n_svc = count // 5
    n_db = count // 10
    n_secret = count // 5
    n_record = count - n_td - n_svc - n_db - n_secret
    ecs, rds, sm, r53 = (client(s) for s in ("ecs", "rds", "secretsmanager", "route53"))
    ecs.create_cluster(clusterName="bench")
    # One customer-managed key for the encrypted half (a made-up key ARN would be an unreadable key).
    bench_key = client("kms").create_key(Description="bench")["KeyMetadata"]["Arn"]
    for i in range(n_td):
        good = i % 2 == 0
        container = {
            "name": "app", "image": f"registry.example/app:{'1.0.' + str(i) if good else 'latest'}",
            "user": "10001" if good else "0", "readonlyRootFilesystem": good, "privileged": not good,
            "environment": [{"name": "PORT", "value": "8080"}] + ([] if good else [{"name": "API_TOKEN", "value": secrets.token_hex(16)}]),
            "secrets": [{"name": "DB_PASSWORD", "valueFrom": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:bench-{i}"}],
        }
        if good:
            container["logConfiguration"] = {"logDriver": "awslogs", "options": {"awslogs-group": "/bench"}}
            container["healthCheck"] = {"command": ["CMD", "true"]}
        td = ecs.register_task_definition(family=f"bench-{i}", networkMode="awsvpc", cpu="256", memory="512",
                                          containerDefinitions=[container])["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(cluster="bench", serviceName=f"svc-{i}", taskDefinition=td, desiredCount=2 if good else 1)
    for i in range(n_db):
        good = i % 2 == 0
        settings = dict(MultiAZ=True, StorageEncrypted=True, KmsKeyId=bench_key,
                        BackupRetentionPeriod=30, DeletionProtection=True, PubliclyAccessible=False) if good else dict(PubliclyAccessible=True)
        rds.create_db_instance(
            DBInstanceIdentifier=f"bench-db-{i}", DBInstanceClass="db.t4g.micro", Engine="postgres", EngineVersion="15.5",
            AllocatedStorage=20, MasterUsername="bench", MasterUserPassword=secrets.token_urlsafe(16), **settings,
        )
    for i in range(n_secret):
        extra = {"KmsKeyId": bench_key} if i % 2 == 0 else {}
        sm.create_secret(Name=f"bench/secret-{i}", SecretString=secrets.token_hex(8), **extra)
    zone = r53.create_hosted_zone(Name="bench.example.com", CallerReference=secrets.token_hex(8))["HostedZone"]["Id"]
    changes = []
    for i in range(n_record):
        role = "PRIMARY" if i % 2 == 0 else "SECONDARY"
        changes.append({"Action": "CREATE", "ResourceRecordSet": {
            "Name": f"r{i // 2}.bench.example.com", "Type": "CNAME", "SetIdentifier": f"r{i}", "Failover": role,
            "TTL": 60 if i % 4 < 2 else 300, "ResourceRecords": [{"Value": "lb.example.com"}]}})
    for start in range(0, len(changes), 100):
        r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes[start:start + 100]})
    print(json.dumps({"task_definitions": n_td, "services": n_svc, "db_instances": n_db, "secrets": n_secret, "records": n_record}))


if __name__ == "__main__":
    main()
