"""One change to a factory through Microsoft's Python SDK (azure-mgmt-datafactory,
azure-identity): create pipeline PL_Py, a Wait activity. Continuous capture
(issue 18) must seal it from ARM's event with this SDK client's identity as its
author. The last line printed is a JSON summary for the Rust test.
"""
import json
import os

from azure.identity import ClientSecretCredential
from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.mgmt.datafactory import models as m

cred = ClientSecretCredential(os.environ["ADFDR_TENANT"], "python-sdk-app", "python-secret",
                              authority=os.environ["ADFDR_AUTHORITY"], disable_instance_discovery=True)
client = DataFactoryManagementClient(cred, os.environ["ADFDR_SUB"], base_url=os.environ["ADFDR_ARM"],
                                     credential_scopes=["https://management.azure.com/.default"])
p = client.pipelines.create_or_update(os.environ["ADFDR_RG"], os.environ["ADFDR_FACTORY"], "PL_Py",
                                      m.PipelineResource(activities=[m.WaitActivity(name="wait", wait_time_in_seconds=3)]))
print(json.dumps({"pipeline": p.name}))
