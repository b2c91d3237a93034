output "client_id" {
  description = "Client id of the broker's managed identity (release.kms.clientId, azure.workload.identity/client-id)."
  value       = azurerm_user_assigned_identity.broker.client_id
}

output "service_account_annotations" {
  description = "Annotations for the broker's Kubernetes ServiceAccount: azure.workload.identity/client-id (and tenant-id)."
  value = {
    "azure.workload.identity/client-id" = azurerm_user_assigned_identity.broker.client_id
    "azure.workload.identity/tenant-id" = azurerm_user_assigned_identity.broker.tenant_id
  }
}

output "pod_labels" {
  description = "Labels the broker's pods need for the Azure Workload Identity webhook to inject the token: azure.workload.identity/use=true."
  value       = { "azure.workload.identity/use" = "true" }
}

output "broker_kms_config" {
  description = "The release.kms block for the broker's config.yaml: kind azure-keyvault, vaultUrl, keyName, keyVersion, credential workload-identity, clientId."
  value = {
    kind = "azure-keyvault"
    # versionless_id is https://<vault>.vault.azure.net/keys/<name>
    vaultUrl   = regex("^(https://[^/]+)/", azurerm_key_vault_key.disk.versionless_id)[0]
    keyName    = azurerm_key_vault_key.disk.name
    keyVersion = azurerm_key_vault_key.disk.version
    credential = "workload-identity"
    clientId   = azurerm_user_assigned_identity.broker.client_id
  }
}
