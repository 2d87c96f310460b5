package cluster

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the cluster's certificate authority, which signs the API server's
// serving certificate (valid for the kubernetes Service's ClusterIP, so pods
// can verify it) and the API server's client certificate towards kubelets,
// plus the service account token signing key.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  *rsa.PrivateKey
	caPEM  []byte
}

// Files in a pki directory. The API server's names are envtest's, so that
// envtest finds its serving certificate ready and does not make its own.
const (
	caFile           = "cluster-ca.crt"
	servingCertFile  = "apiserver.crt"
	servingKeyFile   = "apiserver.key"
	kubeletCertFile  = "apiserver-kubelet-client.crt"
	kubeletKeyFile   = "apiserver-kubelet-client.key"
	saKeyFile        = "sa-signer.key"
	saPublicKeyFile  = "sa-signer.crt"
	certValidityTime = 24 * time.Hour
)

func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pki directory: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate cluster ca key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nicpool-test-cluster-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(certValidityTime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create cluster ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse cluster ca certificate: %w", err)
	}
	p := &pki{dir: dir, caCert: cert, caKey: key, caPEM: pemBlock("CERTIFICATE", der)}
	if err := p.write(caFile, p.caPEM); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

func (p *pki) write(name string, data []byte) error {
	if err := os.WriteFile(p.path(name), data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// issue writes a certificate signed by the CA and its key as name.crt/.key.
func (p *pki) issue(certName, keyName string, tmpl *x509.Certificate) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate key for %s: %w", certName, err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return fmt.Errorf("serial for %s: %w", certName, err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(certValidityTime)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return fmt.Errorf("sign %s: %w", certName, err)
	}
	if err := p.write(certName, pemBlock("CERTIFICATE", der)); err != nil {
		return err
	}
	return p.write(keyName, pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)))
}

// issueServing writes the API server's serving certificate for the given
// names and addresses.
func (p *pki) issueServing(dnsNames []string, ips []net.IP) error {
	return p.issue(servingCertFile, servingKeyFile, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// issueKubeletClient writes the certificate the API server presents to
// kubelets (logs, exec, port-forward).
func (p *pki) issueKubeletClient() error {
	return p.issue(kubeletCertFile, kubeletKeyFile, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// writeServiceAccountKeys writes the key pair that signs and verifies
// service account tokens.
func (p *pki) writeServiceAccountKeys() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("marshal service account public key: %w", err)
	}
	if err := p.write(saKeyFile, pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))); err != nil {
		return err
	}
	return p.write(saPublicKeyFile, pemBlock("PUBLIC KEY", pub))
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
