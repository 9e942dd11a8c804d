"""Building: CDK source -> synth (cdk-nag) -> render per channel -> verify (cfn-lint) -> bundle."""
