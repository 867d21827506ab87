import PaymentsCore
import Hummingbird
import ArgumentParser
import Prometheus
print(PaymentsCoreVersion.value)
