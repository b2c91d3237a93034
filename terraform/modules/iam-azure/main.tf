# terraform/modules/iam-azure — the disk-key Key Vault key and the broker's workload identity on AKS.
# The broker calls wrapKey/unwrapKey (RSA-OAEP-256) on one key version (providers/azure/keyvault.ts);
# "Key Vault Crypto Service Encryption User" grants exactly keys/read, wrap and unwrap, scoped to
# this key rather than the vault.

resource "azurerm_user_assigned_identity" "broker" {
  name                = "${var.name}-broker"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_federated_identity_credential" "broker" {
  name                = "${var.name}-broker-ksa"
  resource_group_name = var.resource_group_name
  parent_id           = azurerm_user_assigned_identity.broker.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = var.oidc_issuer_url
  subject             = "system:serviceaccount:${var.namespace}:${var.service_account}"
}

resource "azurerm_key_vault_key" "disk" {
  name         = "${var.name}-disk-keys"
  key_vault_id = var.key_vault_id
  key_type     = var.key_type
  key_size     = var.key_size
  key_opts     = ["wrapKey", "unwrapKey"]
  tags         = var.tags
}

resource "azurerm_role_assignment" "broker_key" {
  scope                = azurerm_key_vault_key.disk.resource_versionless_id
  role_definition_name = "Key Vault Crypto Service Encryption User"
  principal_id         = azurerm_user_assigned_identity.broker.principal_id
  principal_type       = "ServicePrincipal"
}
